"""Griffe extension used by the docs build: makes tabattn's docstrings render well.

tabattn's docstrings follow Keras's layout (``Call arguments:`` after ``Args:``) and use a few
reST-isms. Griffe's Google-style parser knows neither, so before parsing this extension:

- turns ``Call arguments:`` into an "other parameters" section titled "Call arguments", so the
  call's inputs get a table like the constructor's;
- splits an ``Args:`` entry that documents two names at once (``a, b: ...``) into one entry per
  name;
- drops Sphinx roles (``:class:`X``` becomes ```X```);
- indents the doctest block under ``Example:`` (written flush, as doctest reads it), so that
  griffe parses it as an examples section and renders it as code.
"""

import re

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|mod):`~?([^`]+)`")
_SHARED_ENTRY = re.compile(r"^(?P<indent>\s+)(?P<first>\w+), (?P<second>\w+): (?P<text>.*)$")
_SECTION = re.compile(r"^\s*[A-Z][\w ]*:\s*$")


def rewrite(text):
    """The docstring ``text`` with the rewrites described in the module docstring."""
    text = _ROLE.sub(r"`\1`", text)
    lines, section = [], None
    for line in text.splitlines():
        if _SECTION.match(line) and not line.startswith(" "):
            section = line.strip()
            if section == "Call arguments:":
                line = "Other parameters: Call arguments"
            elif section in ("Example:", "Examples:"):
                line = "Examples:"
        elif section == "Args:" and (match := _SHARED_ENTRY.match(line)):
            for name in (match["first"], match["second"]):
                lines.append(f"{match['indent']}{name}: {match['text']}")
            continue
        elif section in ("Example:", "Examples:"):
            if not line.strip() and lines[-1] == "Examples:":
                continue  # no blank line between a section's title and its contents
            line = f"    {line}" if line.strip() else line
        lines.append(line)
    return "\n".join(lines)


class TabattnDocstrings(griffe.Extension):
    """Rewrites every docstring of the package as ``rewrite`` says, before it is parsed."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
