"""On the PyTorch backend a tabattn layer is a ``torch.nn.Module`` trainable with torch.optim."""

import numpy as np
import pytest

from tabattn.layers import CLSToken, FeatureTokenizer, MultiHeadAttention


@pytest.mark.torch_only
def test_layer_trains_in_a_plain_pytorch_loop():
    torch = pytest.importorskip("torch")  # this test alone is about PyTorch itself
    torch.manual_seed(0)
    tokenizer = FeatureTokenizer(d_token=8)
    attention = MultiHeadAttention(num_heads=2, embedding_dim=8)
    x = torch.randn(64, 5)
    tokens = tokenizer(x)
    attention(tokens)  # builds the weights
    assert isinstance(attention, torch.nn.Module) and isinstance(tokenizer, torch.nn.Module)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer, self.cls, self.attention = tokenizer, CLSToken(8), attention
            self.head = torch.nn.Linear(8, 1)

        def forward(self, inputs):
            tokens = self.cls(self.tokenizer(inputs))
            return self.head(self.attention(tokens)[:, -1])

    net = Net()
    net(x)
    parameters = list(net.parameters())
    keras_weights = len(tokenizer.weights) + len(attention.weights) + 1  # + the [CLS] token
    assert len(parameters) == keras_weights + 2  # + Linear weight and bias
    y = (x[:, :1] * 2 - x[:, 1:2]).detach()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < 0.3 * losses[0]
