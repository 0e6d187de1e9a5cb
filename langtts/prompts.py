"""Prompt templates as editable text files.

A template file has a ``[system]`` section and a ``[user]`` section; ``{name}`` placeholders are filled with
``str.format`` (write ``{{`` and ``}}`` for literal braces). Names are paths without ``.txt`` under a prompt
directory, e.g. ``roles/math/assistant``. Lookup order: strings passed in ``overrides``, then the user directory
(``directory=`` or ``$LANGTTS_PROMPTS_DIR``), then the prompts shipped with langtts.
"""

from __future__ import annotations

import os
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
# Inside a wheel the prompts live in langtts/_prompts; in a source checkout, at the repository's top level.
SHIPPED_DIR = next(
    (p for p in (_PACKAGE_DIR / "_prompts", _PACKAGE_DIR.parent / "prompts") if p.is_dir()),
    _PACKAGE_DIR / "_prompts",
)


class PromptError(ValueError):
    """An unknown prompt name, a malformed template file, or a placeholder that is missing or unknown."""


@dataclass(frozen=True)
class PromptTemplate:
    """A system and a user template with ``{placeholder}`` fields."""

    name: str
    system: str
    user: str

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(
            field.split(".")[0].split("[")[0]
            for text in (self.system, self.user)
            for _, field, _, _ in string.Formatter().parse(text)
            if field is not None
        )

    def check(self, required: Collection[str], allowed: Collection[str]) -> None:
        """Raise PromptError unless every required placeholder is used and every used one is allowed."""
        if missing := sorted(set(required) - self.placeholders):
            raise PromptError(f"prompt {self.name!r} lacks placeholder(s) {', '.join('{' + m + '}' for m in missing)}")
        if unknown := sorted(self.placeholders - set(allowed)):
            raise PromptError(
                f"prompt {self.name!r} uses unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)} "
                f"(available: {', '.join(sorted(allowed))})"
            )

    def messages(self, **values: str) -> list[dict[str, str]]:
        """Chat messages with the placeholders filled in (an empty system section sends no system message)."""
        try:
            system, user = self.system.format(**values), self.user.format(**values)
        except (KeyError, IndexError) as error:
            raise PromptError(f"prompt {self.name!r} needs a value for {error}") from None
        return ([{"role": "system", "content": system}] if system.strip() else []) + [{"role": "user", "content": user}]

    @classmethod
    def parse(cls, name: str, text: str) -> PromptTemplate:
        """Parse ``[system]`` / ``[user]`` sections; text without section headers is the user template."""
        sections: dict[str, list[str]] = {}
        current: str | None = None
        for line in text.splitlines():
            header = line.strip().lower()
            if header in ("[system]", "[user]"):
                current = header[1:-1]
                if current in sections:
                    raise PromptError(f"prompt {name!r} has two {line.strip()} sections")
                sections[current] = []
            elif current is None:
                if line.strip():
                    return cls(name=name, system="", user=text.strip())
            else:
                sections[current].append(line)
        if "user" not in sections:
            raise PromptError(f"prompt {name!r} has no [user] section")
        return cls(
            name=name,
            system="\n".join(sections.get("system", [])).strip(),
            user="\n".join(sections["user"]).strip(),
        )


class PromptLibrary:
    """Finds prompt templates by name: overrides, then a user directory, then the shipped prompts."""

    def __init__(self, directory: str | Path | None = None, overrides: Mapping[str, str] | None = None) -> None:
        directory = directory or os.environ.get("LANGTTS_PROMPTS_DIR")
        self.directories = [Path(directory)] if directory else []
        self.directories.append(SHIPPED_DIR)
        if directory and not self.directories[0].is_dir():
            raise PromptError(f"prompt directory {directory} does not exist")
        self.overrides = dict(overrides or {})

    def exists(self, name: str) -> bool:
        return name in self.overrides or any((d / f"{name}.txt").is_file() for d in self.directories)

    def get(self, name: str) -> PromptTemplate:
        if name in self.overrides:
            return PromptTemplate.parse(name, self.overrides[name])
        return PromptTemplate.parse(name, self.file(f"{name}.txt").read_text(encoding="utf-8"))

    def file(self, filename: str) -> Path:
        """The file ``filename`` (a path with its suffix, e.g. ``serve/base_model.jinja``): the user's, else the
        shipped one."""
        for directory in self.directories:
            if (path := directory / filename).is_file():
                return path
        name = filename.removesuffix(".txt")
        raise PromptError(f"unknown prompt {name!r} (looked in {', '.join(str(d) for d in self.directories)})")

    def text(self, name: str, **values: str) -> str:
        """A prompt file that is one piece of text (no ``[system]`` section), e.g. an answer format, with
        ``values`` filled in; it must use exactly the placeholders ``values`` names."""
        template = self.get(name)
        if template.system:
            raise PromptError(f"prompt {name!r} is one text: it has no [system] section")
        template.check(values, values)
        return template.user.format(**values)

    def first(self, *names: str) -> PromptTemplate:
        """The first of ``names`` that exists (e.g. a task family's file, then the generic default)."""
        for name in names:
            if self.exists(name):
                return self.get(name)
        raise PromptError(f"none of the prompts {', '.join(map(repr, names))} exists")

    def names(self) -> list[str]:
        found = set(self.overrides)
        for directory in self.directories:
            found.update(str(p.relative_to(directory).with_suffix("")) for p in directory.rglob("*.txt"))
        return sorted(found)
