"""H1's 2x2 design, as data: normalization x rounding over the four ViT-tiny arms the H1 modules share.

  Baseline: normalized float (the usual pipeline)    NormRound: normalized, rounded to 8 bits first
  Plain:    [0, 1] float                              Round:     [0, 1], rounded to 8 bits (the post's)
The four H1 modules (test_quantized_input, test_rounding_unnormalized, test_rounding_normalized,
test_normalization_report) name their arms by these cells and declare `DESIGN = H1_2X2`; the report shows
the cell means at the deciding eps and these contrasts of them. Descriptive: the modules' own tests decide.
"""
from harness import Contrast, Factorial

H1_2X2 = Factorial(
    title="H1's 2x2: normalization × rounding",
    factors={"normalization": ("normalized", "unnormalized [0, 1]"), "rounding": ("float", "rounded (8-bit)")},
    cells={"Baseline": ("normalized", "float"), "NormRound": ("normalized", "rounded (8-bit)"),
           "Plain": ("unnormalized [0, 1]", "float"), "Round": ("unnormalized [0, 1]", "rounded (8-bit)")},
    contrasts=(
        Contrast("rounding, unnormalized: Round − Plain", {"Round": 1, "Plain": -1}, "rounding alone, [0, 1] inputs"),
        Contrast("rounding, normalized: NormRound − Baseline", {"NormRound": 1, "Baseline": -1},
                 "rounding alone, normalized inputs"),
        Contrast("rounding, main effect", {"Round": .5, "NormRound": .5, "Plain": -.5, "Baseline": -.5},
                 "mean of the two rounding effects"),
        Contrast("normalization, main effect", {"Baseline": .5, "NormRound": .5, "Plain": -.5, "Round": -.5},
                 "mean of Baseline − Plain and NormRound − Round"),
        Contrast("interaction: (NormRound − Baseline) − (Round − Plain)",
                 {"NormRound": 1, "Baseline": -1, "Round": -1, "Plain": 1},
                 "how much rounding's effect depends on normalization"),
        Contrast("the post's comparison: Round − Baseline", {"Round": 1, "Baseline": -1},
                 "rounding and dropping normalization at once"),
    ))
