"""The style stress set's splits as tables: classes, seeds, random-stream salts, image modes, each split's font
families and each class's generator settings side by side (parity.codes.stress draws from them; see its
docstring for what keeps the splits apart). Plain data.
"""

from __future__ import annotations

from parity.codes.fonts import PRINTED_TRAIN_FONTS

CLASSES = ("grid", "crossing_lines", "crossing_curves", "dots", "blur", "tiny", "outline", "halftone",
           "neighbour_fragments", "rotation_shear", "low_contrast", "inverted", "fonts")
SPLITS = ("validation", "test")  # the scored splits
TRAIN = "train"  # the split the `best` recipe trains on (parity.codes.training.style_digits), never scored
DEFAULT_SEEDS = {TRAIN: 1_000, "validation": 31, "test": 53}  # TRAIN: parity.codes.generate.TRAIN_SEED_BASE
SALT = {TRAIN: 0x7EA1, "validation": 0x5A11D, "test": 0x7E57}
MODES = ("L", "RGB", "RGBA", "P", "I;16")
_SOURCE_SANS = tuple(f"pkg:font_source_sans_pro/SourceSansPro-{cut}.ttf" for cut in ("Regular", "Bold", "It", "Light", "Black"))
_SOURCE_SERIF = tuple(f"pkg:font_source_serif_pro/SourceSerifPro-{cut}.ttf" for cut in ("Regular", "Bold", "It", "Light", "Black"))
FONT_FAMILIES = {  # split -> typeface family -> its fonts ("mpl:" matplotlib's, "pillow:" Pillow's, "pen" drawn here,
    # "captcha:" captcha's, "pkg:<package>/<file>" a font package from PyPI that the project installs)
    TRAIN: {"STIX": tuple(f"mpl:{name}" for name in PRINTED_TRAIN_FONTS), "Droid Sans Mono": ("captcha:DroidSansMono.ttf",),
            "Source Sans Pro": _SOURCE_SANS, "Source Serif Pro": _SOURCE_SERIF,
            "Caladea": tuple(f"pkg:font_caladea/Caladea-{cut}.ttf" for cut in ("Regular", "Bold", "Italic", "BoldItalic")),
            "Fredoka One": ("pkg:font_fredoka_one/FredokaOne-Regular.ttf",),
            "Hanken Grotesk": tuple(f"pkg:font_hanken_grotesk/HankenGrotesk-{cut}.otf" for cut in ("Regular", "Bold", "Light", "Italic")),
            "Amatic SC": ("pkg:font_amatic_sc/AmaticSC-Regular.ttf", "pkg:font_amatic_sc/AmaticSC-Bold.ttf"),
            "Intuitive": ("pkg:font_intuitive/Intuitive.ttf",)},
    "validation": {"Aileron": ("pillow:aileron",), "Pillow bitmap": ("pillow:bitmap",),
                   "CM Math Italic": ("mpl:cmmi10.ttf",), "pen": ("pen",)},
    "test": {"DejaVu Sans": ("mpl:DejaVuSans.ttf", "mpl:DejaVuSans-Bold.ttf", "mpl:DejaVuSans-Oblique.ttf"),
             "DejaVu Serif": ("mpl:DejaVuSerif.ttf", "mpl:DejaVuSerif-Bold.ttf", "mpl:DejaVuSerif-Italic.ttf"),
             "DejaVu Sans Mono": ("mpl:DejaVuSansMono.ttf", "mpl:DejaVuSansMono-BoldOblique.ttf"),
             "CM Roman": ("mpl:cmr10.ttf", "mpl:cmb10.ttf", "mpl:cmti10.ttf"), "CM Sans": ("mpl:cmss10.ttf",),
             "CM Typewriter": ("mpl:cmtt10.ttf",)},
}
FONTS = {split: tuple(f for fonts in families.values() for f in fonts) for split, families in FONT_FAMILIES.items()}
FAMILIES = {f: family for families in FONT_FAMILIES.values() for family, fonts in families.items() for f in fonts}
TRAINING_FAMILIES = tuple(FONT_FAMILIES[TRAIN])  # STIX is fonts.PRINTED_TRAIN_FONTS, Droid Sans Mono captcha's font

# class: (train, validation, test) settings, side by side; sizes are shares of the glyph's height. The settings that
# define a class take values in each split that the other two never draw (the train split also draws kinds of
# its own: Bezier curves, irregular blobs, resampling blur, Lanczos-shrunk tiny glyphs, hexagonal halftone).
SETTINGS_SIDE_BY_SIDE = {
    "grid": ({"period": (0.1, 0.17, 0.22, 0.28, 0.33, 0.42), "angle": (8, 15, 22, 38, 52, 60, 68, 80), "strength": (0.5, 0.7, 0.8, 0.95)},
             {"period": (0.12, 0.2, 0.3), "angle": (0, 30), "strength": (0.45, 0.9)},
             {"period": (0.15, 0.25, 0.36), "angle": (3, 45), "strength": (0.6, 1.0)}),
    "crossing_lines": ({"count": (1, 2, 3), "width": (0.35, 0.5, 0.7, 0.9)},
                       {"count": (1, 3), "width": (0.3, 0.6)}, {"count": (1, 2), "width": (0.45, 0.8)}),
    "crossing_curves": ({"shape": ("bezier",), "count": (1, 2, 3), "width": (0.35, 0.5, 0.7, 0.9)},
                        {"shape": ("sine",), "count": (1, 2), "width": (0.3, 0.6)},
                        {"shape": ("arc",), "count": (1, 2), "width": (0.45, 0.8)}),
    "dots": ({"shape": ("blob",), "size": (0.025, 0.04, 0.05), "density": (0.02, 0.035, 0.05)},
             {"shape": ("square",), "size": (0.02, 0.04), "density": (0.02, 0.05)},
             {"shape": ("disc",), "size": (0.03, 0.06), "density": (0.03, 0.07)}),
    "blur": ({"kind": ("resample",), "radius": (0.035, 0.055, 0.075, 0.09)},
             {"kind": ("gaussian",), "radius": (0.03, 0.05, 0.07)}, {"kind": ("box",), "radius": (0.04, 0.06, 0.08)}),
    "tiny": ({"height": (8, 11, 14, 17), "raster": ("lanczos",)},
             {"height": (9, 12, 15, 18), "raster": ("direct",)}, {"height": (10, 13, 16, 19), "raster": ("supersampled",)}),
    "outline": ({"ring": (0.025, 0.035, 0.045, 0.055, 0.075)}, {"ring": (0.03, 0.05)}, {"ring": (0.04, 0.065)}),
    "halftone": ({"lattice": ("hexagonal",), "period": (1 / 8, 1 / 10, 1 / 12, 1 / 14)},
                 {"lattice": ("square",), "period": (1 / 9, 1 / 13)}, {"lattice": ("diagonal",), "period": (1 / 11, 1 / 15)}),
    "neighbour_fragments": ({"share": (0.22, 0.3, 0.38, 0.5), "gap": (0.03, 0.06, 0.11, 0.17, 0.24)},
                            {"share": (0.2, 0.35), "gap": (0.08, 0.2)}, {"share": (0.28, 0.45), "gap": (0.04, 0.14)}),
    "rotation_shear": ({"angle": (-40, -33, -27, -21, -15, -6, 6, 15, 21, 27, 33, 40), "shear": (0.05, 0.2, 0.35, 0.45)},
                       {"angle": (-36, -24, -12, 12, 24, 36), "shear": (0.0, 0.3)},
                       {"angle": (-30, -18, 18, 30), "shear": (0.15, 0.4)}),
    "low_contrast": ({"difference": (12, 16, 20, 24, 29, 35, 42)}, {"difference": (14, 22, 32)},
                     {"difference": (18, 26, 38)}),  # luma steps, of 255
    "inverted": ({"palette": ("mixed",), "difference": (95, 125, 155, 185, 215)},
                 {"palette": ("gray",), "difference": (110, 170)}, {"palette": ("colour",), "difference": (140, 200)}),
    "fonts": ({}, {}, {}),  # the split's fonts are its setting
}
SETTINGS = {split: {cls: sides[i] for cls, sides in SETTINGS_SIDE_BY_SIDE.items()} for i, split in enumerate((TRAIN,) + SPLITS)}
