"""Analysis of human realism studies: scores, fits, metrics and correlations."""

__all__: list[str] = []
