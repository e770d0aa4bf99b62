"""Theme files: `themes/*.toml` read at start and turned into Textual `Theme`s.

A theme file names its colours under `[colors]` (Textual colour strings) and may
add `[variables]`. A file that cannot be read or names a bad colour is skipped
with a warning; the console then falls back to the default theme.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from medops.core.errors import ConfigError

DEFAULT_THEME = "medops-dark"
# The ansi-only theme for plain terminals and NO_COLOR sessions.
PLAIN_THEME = "medops-contrast"
THEMES_DIR_ENV = "MEDOPS_THEMES_DIR"
COLOR_KEYS = frozenset({"primary", "secondary", "warning", "error", "success", "accent",
                        "foreground", "background", "surface", "panel", "boost"})
TOP_KEYS = frozenset({"name", "dark", "ansi", "luminosity_spread", "text_alpha", "colors", "variables"})


class ThemeFileError(ConfigError):
    """A theme file is unreadable or describes an impossible theme."""


@dataclass(frozen=True)
class LoadedThemes:
    """Themes read from the folder, and one warning per file that was skipped."""

    themes: tuple[Theme, ...]
    warnings: tuple[str, ...]
    folder: Path | None

    def names(self) -> tuple[str, ...]:
        return tuple(theme.name for theme in self.themes)


def themes_dir(env: dict[str, str] | None = None) -> Path | None:
    """`MEDOPS_THEMES_DIR`, else `themes/` beside the package (a checkout), else the copy a wheel ships."""
    env = dict(os.environ) if env is None else env
    if env.get(THEMES_DIR_ENV):
        return Path(env[THEMES_DIR_ENV]).expanduser()
    here = Path(__file__).resolve().parent
    for folder in (here.parent / "themes", here / "themes"):  # checkout or editable install; installed wheel
        if folder.is_dir():
            return folder
    return None


def load_themes(folder: Path | None) -> LoadedThemes:
    """Every `*.toml` in `folder`, in name order; broken files become warnings."""
    if folder is None:
        return LoadedThemes((), (f"no themes folder found (set {THEMES_DIR_ENV}); using Textual's theme",), None)
    if not folder.is_dir():
        return LoadedThemes((), (f"themes folder {folder} does not exist; using Textual's theme",), folder)
    themes: list[Theme] = []
    warnings: list[str] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            themes.append(parse_theme(path))
        except ThemeFileError as exc:
            warnings.append(f"theme file {path.name} skipped: {exc}")
    return LoadedThemes(tuple(themes), tuple(warnings), folder)


def parse_theme(path: Path) -> Theme:
    """One theme file as a `Theme`, or `ThemeFileError` saying what to fix."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ThemeFileError(f"not valid TOML ({exc})") from None
    except OSError as exc:
        raise ThemeFileError(f"cannot be read ({exc.strerror})") from None
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ThemeFileError(f"unknown keys {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise ThemeFileError("name must be a non-empty string")
    colors = data.get("colors", {})
    variables = data.get("variables", {})
    if not isinstance(colors, dict) or not isinstance(variables, dict):
        raise ThemeFileError("[colors] and [variables] must be tables")
    bad_keys = set(colors) - COLOR_KEYS
    if bad_keys:
        raise ThemeFileError(f"unknown colours {sorted(bad_keys)}; allowed: {sorted(COLOR_KEYS)}")
    if "primary" not in colors:
        raise ThemeFileError("[colors] needs at least primary")
    for key, value in colors.items():
        _check_color(f"colors.{key}", value)
    for key, value in variables.items():
        if not isinstance(value, str):
            raise ThemeFileError(f"variables.{key} must be a string")
    dark, ansi = data.get("dark", True), data.get("ansi", False)
    if not isinstance(dark, bool) or not isinstance(ansi, bool):
        raise ThemeFileError("dark and ansi must be true or false")
    spread = _number(data, "luminosity_spread", 0.15)
    alpha = _number(data, "text_alpha", 0.95)
    return Theme(name=name.strip(), dark=dark, ansi=ansi, luminosity_spread=spread, text_alpha=alpha,
                 variables=dict(variables), **colors)


def choose_theme(requested: str | None, available: tuple[str, ...], *, from_files: tuple[str, ...] = (),
                 no_color: bool = False) -> tuple[str, str | None]:
    """The theme to start with and a warning if the requested one is missing.

    `available` is every registered theme; `from_files` the ones read from themes/.
    """
    fallback = DEFAULT_THEME if DEFAULT_THEME in available else "textual-dark"
    if no_color and PLAIN_THEME in available and requested in (None, DEFAULT_THEME):
        return PLAIN_THEME, None
    if requested is None or requested in available:
        return requested or fallback, None
    ours = ", ".join(from_files) or "none loaded"
    return fallback, (f"theme {requested!r} not found (theme files: {ours}; Textual's own, such as nord,"
                      f" work too); using {fallback}")


REMEMBERED_THEME_FILE = "console-theme"  # in the config folder: the theme t last chose


def remembered_theme(config_dir: Path) -> str | None:
    """The theme `t` chose last time, if one was remembered and can be read."""
    try:
        name = (config_dir / REMEMBERED_THEME_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name or None


def remember_theme(config_dir: Path, name: str) -> str | None:
    """Keep `name` for the next start; returns why it could not, or None."""
    try:
        config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (config_dir / REMEMBERED_THEME_FILE).write_text(name + "\n", encoding="utf-8")
    except OSError as exc:
        return f"the theme is not remembered: {config_dir} cannot be written ({exc.strerror})"
    return None


def _check_color(key: str, value: object) -> None:
    if not isinstance(value, str):
        raise ThemeFileError(f"{key} must be a colour string like \"#4f9de0\"")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeFileError(f"{key} = {value!r} is not a colour (try \"#rrggbb\" or a name)") from None


def _number(data: dict[str, object], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ThemeFileError(f"{key} must be a number between 0 and 1")
    return float(value)
