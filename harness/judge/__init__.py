"""Judging finished runs: tradeoff scores (stats), statistical tests (inference), and the verdict policy
(verdict). Pure: plain numbers in, a Case out."""
