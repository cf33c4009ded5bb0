"""Vectorised bootstrap for correlations between human scores and metrics.

Everything here works on whole stacks of resamples at once: a correlation
function takes arrays whose last axis holds the models of one resample and
returns one coefficient per resample, so 9,999 resamples cost a few array
operations instead of 9,999 calls to :mod:`scipy.stats`.

Resampling follows the data's two levels. Models are drawn with replacement;
when per-participant data is given, each drawn model slot then draws its own
participants with replacement and takes their mean (the published human error
rate is a mean over participants), so a model drawn twice gets two independent
participant resamples, as in a two-stage cluster bootstrap.

Missing values (``NaN``) are allowed in metric values: a resample's
coefficient is computed over the models whose values are present in it, the
way ``nan_policy='omit'`` treats them in scipy.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Names of the correlation methods, in the order they are reported.
METHODS = ("spearman", "kendall", "pearson")

# Bound on the number of array cells one block of resamples may create; keeps
# the memory of Kendall's pairwise signs near 100 MB whatever the model count.
_CELLS_PER_BLOCK = 2**23

#: Resamples drawn per block; each block has its own random stream, so the
#: result of a seed never depends on memory or on how many blocks run.
BLOCK_SIZE = 1000


def _valid_pairs(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ~(np.isnan(x) | np.isnan(y))


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r along the last axis, ignoring pairs with a missing value.

    Parameters
    ----------
    x, y : ndarray
        Arrays of the same shape ``(..., n)``; the last axis holds the paired
        observations (models) of one resample.

    Returns
    -------
    ndarray
        Shape ``(...)``: the coefficient of each row, ``NaN`` where fewer than
        two complete pairs remain or either side is constant.

    Notes
    -----
    :math:`r = \\sum (x-\\bar x)(y-\\bar y) / \\sqrt{\\sum (x-\\bar x)^2
    \\sum (y-\\bar y)^2}` over the complete pairs; equals
    ``scipy.stats.pearsonr`` row by row (R: ``cor(x, y)``).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    valid = _valid_pairs(x, y)
    count = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_mean = np.where(valid, x, 0.0).sum(axis=-1) / count
        y_mean = np.where(valid, y, 0.0).sum(axis=-1) / count
        dx = np.where(valid, x - x_mean[..., None], 0.0)
        dy = np.where(valid, y - y_mean[..., None], 0.0)
        sxy = (dx * dy).sum(axis=-1)
        scale = np.sqrt((dx * dx).sum(axis=-1)) * np.sqrt((dy * dy).sum(axis=-1))
        r = sxy / scale
    # A constant side has scale 0; report it as undefined, like scipy.
    r = np.where((count >= 2) & (scale > 0), r, np.nan)
    return np.clip(r, -1.0, 1.0)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Rank along the last axis with ties given their average rank.

    ``NaN`` stays ``NaN`` and the other values are ranked among themselves,
    exactly as ``scipy.stats.rankdata(values, axis=-1, nan_policy='omit')``.
    """
    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    if not missing.any():
        return stats.rankdata(values, method="average", axis=-1)
    if np.isinf(values).any():
        return stats.rankdata(values, method="average", axis=-1, nan_policy="omit")
    # scipy's 'omit' ranks row by row in Python; ranking the missing values as
    # +inf instead leaves the ranks of the others as they are, in one call.
    ranks = stats.rankdata(np.where(missing, np.inf, values), axis=-1)
    return np.where(missing, np.nan, ranks)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis, ties given average ranks.

    Parameters
    ----------
    x, y : ndarray
        Arrays of the same shape ``(..., n)``.

    Returns
    -------
    ndarray
        Shape ``(...)``: Pearson's r of the average ranks of each row,
        computed over the complete pairs only (both values present).

    Notes
    -----
    Equals ``scipy.stats.spearmanr`` row by row, including its treatment of
    ties (R: ``cor(x, y, method = "spearman")``).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    valid = _valid_pairs(x, y)
    # Rank within the complete pairs only, so a model missing on one side does
    # not shift the ranks of the other side.
    x_ranks = average_ranks(np.where(valid, x, np.nan))
    y_ranks = average_ranks(np.where(valid, y, np.nan))
    return pearson_rows(x_ranks, y_ranks)


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b along the last axis.

    Parameters
    ----------
    x, y : ndarray
        Arrays of the same shape ``(..., n)``.

    Returns
    -------
    ndarray
        Shape ``(...)``: tau-b of each row over its complete pairs, ``NaN``
        where either side has no untied pair.

    Notes
    -----
    With :math:`s^x_{ij} = \\mathrm{sign}(x_i - x_j)` over all pairs
    :math:`i < j`,

    .. math:: \\tau_b = \\frac{\\sum s^x_{ij} s^y_{ij}}
              {\\sqrt{\\sum (s^x_{ij})^2 \\sum (s^y_{ij})^2}},

    which is :math:`(n_c - n_d) / \\sqrt{(n_0 - n_1)(n_0 - n_2)}` with
    :math:`n_1`, :math:`n_2` the pairs tied in x and in y. Equals
    ``scipy.stats.kendalltau`` (``variant='b'``) row by row (R:
    ``cor(x, y, method = "kendall")``). Cost is O(n^2) per row; rows are
    processed in blocks to bound memory.

    References
    ----------
    Kendall, M. G. (1945). The treatment of ties in ranking problems.
    Biometrika 33(3), 239-251.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape, not {x.shape} and {y.shape}"
        )
    n = x.shape[-1]
    lead = x.shape[:-1]
    first, second = np.triu_indices(n, k=1)
    x_rows = x.reshape(-1, n)
    y_rows = y.reshape(-1, n)
    tau = np.full(x_rows.shape[0], np.nan)
    step = max(1, _CELLS_PER_BLOCK // max(1, first.size))
    for start in range(0, x_rows.shape[0], step):
        block = slice(start, start + step)
        tau[block] = _kendall_block(x_rows[block], y_rows[block], first, second)
    return tau.reshape(lead)


def _kendall_block(
    x: np.ndarray, y: np.ndarray, first: np.ndarray, second: np.ndarray
) -> np.ndarray:
    valid = _valid_pairs(x, y)
    pair_valid = valid[:, first] & valid[:, second]
    with np.errstate(invalid="ignore"):
        sign_x = np.where(pair_valid, np.sign(x[:, first] - x[:, second]), 0)
        sign_y = np.where(pair_valid, np.sign(y[:, first] - y[:, second]), 0)
    sign_x = sign_x.astype(np.int8)
    sign_y = sign_y.astype(np.int8)
    concordance = (sign_x * sign_y).sum(axis=-1, dtype=np.int64)
    untied_x = np.abs(sign_x).sum(axis=-1, dtype=np.int64)
    untied_y = np.abs(sign_y).sum(axis=-1, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = concordance / np.sqrt(untied_x.astype(float) * untied_y)
    tau = np.where((untied_x > 0) & (untied_y > 0), tau, np.nan)
    return np.clip(tau, -1.0, 1.0)


CORRELATIONS = {
    "spearman": spearman_rows,
    "kendall": kendall_rows,
    "pearson": pearson_rows,
}


def check_methods(methods: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Return the methods lower-cased and deduplicated, or raise naming the allowed.

    Raises
    ------
    ValueError
        If a method is not one of ``spearman``, ``kendall``, ``pearson`` or
        none is given.
    """
    chosen = tuple(dict.fromkeys(m.strip().lower() for m in methods if m.strip()))
    unknown = [m for m in chosen if m not in CORRELATIONS]
    if unknown or not chosen:
        raise ValueError(
            f"unknown correlation method(s) {', '.join(unknown) or '(none given)'}; "
            f"allowed: {', '.join(METHODS)}"
        )
    return chosen


def bh_adjust(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; ``NaN`` entries stay ``NaN``.

    Parameters
    ----------
    p_values : array_like
        p-values of one family of tests, each in [0, 1] or ``NaN``.

    Returns
    -------
    ndarray
        Same shape: :math:`\\tilde p_{(i)} = \\min_{j \\ge i} \\min(1,
        m\\,p_{(j)} / j)` over the ``m`` non-missing p-values sorted
        ascending.

    Raises
    ------
    ValueError
        If a p-value lies outside [0, 1].

    Notes
    -----
    Equals ``scipy.stats.false_discovery_control(p, method='bh')`` on the
    non-missing entries (R: ``p.adjust(p, "BH")``); unlike scipy, missing
    p-values (an undefined coefficient) are left out of the family instead of
    raising.

    References
    ----------
    Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate.
    J. R. Stat. Soc. B 57(1), 289-300.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    present = ~np.isnan(p)
    values = p[present]
    if np.any((values < 0) | (values > 1)):
        raise ValueError("p-values must lie between 0 and 1")
    m = values.size
    if m == 0:
        return out
    order = np.argsort(values)
    scaled = values[order] * m / np.arange(1, m + 1)
    # The running minimum from the largest p down keeps the adjusted values
    # monotone in the raw ones.
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[present] = result
    return out


def percentile_interval(
    draws: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval along axis 0, ignoring undefined draws.

    Returns
    -------
    ci_low, ci_high : ndarray
        The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
        (linear interpolation, R's ``quantile(type = 7)``) of the non-missing
        draws; ``NaN`` where every draw is missing.
    """
    if not 0 < confidence < 1:
        raise ValueError(
            f"confidence must lie strictly between 0 and 1, not {confidence}"
        )
    draws = np.asarray(draws, dtype=float)
    if draws.shape[0] == 0:
        return np.full(draws.shape[1:], np.nan), np.full(draws.shape[1:], np.nan)
    alpha = 1 - confidence
    quantiles = [alpha / 2, 1 - alpha / 2]
    # np.quantile works on all columns at once; nanquantile goes column by
    # column, so it only gets the columns that need it.
    low, high = np.quantile(np.nan_to_num(draws), quantiles, axis=0)
    missing = np.isnan(draws).any(axis=0)
    empty = np.isnan(draws).all(axis=0)
    partial = missing & ~empty
    if np.any(partial):
        if draws.ndim == 1:
            low, high = np.nanquantile(draws, quantiles)
        else:
            low[partial], high[partial] = np.nanquantile(
                draws[:, partial], quantiles, axis=0
            )
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def bootstrap_p_value(draws: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-value for "the statistic is zero", along axis 0.

    Returns
    -------
    ndarray
        :math:`p = \\min(1, 2 \\min(1 + \\#\\{d^* \\le 0\\}, 1 + \\#\\{d^* \\ge
        0\\}) / (B + 1))` over the ``B`` non-missing draws ``d*``: the smallest
        two-sided level at which the percentile interval excludes zero, with
        the usual +1 so that no p-value is exactly 0.
    """
    draws = np.asarray(draws, dtype=float)
    present = ~np.isnan(draws)
    count = present.sum(axis=0)
    below = ((draws <= 0) & present).sum(axis=0)
    above = ((draws >= 0) & present).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 2 * (np.minimum(below, above) + 1) / (count + 1)
    return np.where(count > 0, np.minimum(p, 1.0), np.nan)


@dataclass
class Participants:
    """Per-participant values of one human score, grouped by model.

    ``values`` holds every participant's score, the participants of model
    ``m`` at ``values[offsets[m]:offsets[m] + counts[m]]``.
    """

    values: np.ndarray
    offsets: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_groups(cls, groups: list[np.ndarray]) -> Participants:
        """Build from one array of participant values per model, in model order."""
        counts = np.array([len(g) for g in groups], dtype=np.int64)
        if np.any(counts == 0):
            raise ValueError("every model needs at least one participant")
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        values = np.concatenate([np.asarray(g, dtype=float) for g in groups])
        return cls(values=values, offsets=offsets, counts=counts)

    def means(self) -> np.ndarray:
        """The per-model mean over participants (the point estimate)."""
        sums = np.add.reduceat(self.values, self.offsets)
        return sums / self.counts

    def resample_means(self, rng: np.random.Generator, slots: np.ndarray) -> np.ndarray:
        """Mean of a fresh participant resample for every model slot.

        Parameters
        ----------
        rng : numpy.random.Generator
        slots : ndarray of int, shape (B, M)
            The model drawn into each slot of each resample.

        Returns
        -------
        ndarray, shape (B, M)
            For each slot, the mean over ``counts[model]`` participants drawn
            with replacement from that model's participants.
        """
        counts = self.counts[slots]
        width = int(self.counts.max())
        # B x M x width draws; columns past a model's own count are masked out.
        draws = rng.integers(0, counts[..., None], size=(*slots.shape, width))
        picked = self.values[self.offsets[slots][..., None] + draws]
        keep = np.arange(width) < counts[..., None]
        return np.where(keep, picked, 0.0).sum(axis=-1) / counts


def dataset_rng(seed: int, dataset: str, block: int) -> np.random.Generator:
    """The random stream of one block of resamples of one dataset.

    Streams come from ``numpy.random.SeedSequence(seed)`` with a spawn key
    made of the dataset name's CRC-32 and the block number, so a dataset's
    resamples do not depend on which other datasets are analysed.
    """
    key = (zlib.crc32(dataset.encode("utf-8")), block)
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key))
    )


def resample_blocks(n_boot: int, block_size: int = BLOCK_SIZE) -> list[slice]:
    """Split ``range(n_boot)`` into consecutive blocks of ``block_size``."""
    if n_boot < 0:
        raise ValueError(
            f"the number of bootstrap resamples must be >= 0, not {n_boot}"
        )
    return [slice(s, min(s + block_size, n_boot)) for s in range(0, n_boot, block_size)]


def bootstrap_block(
    rng: np.random.Generator,
    size: int,
    human: np.ndarray,
    metrics: np.ndarray,
    methods: tuple[str, ...],
    participants: Participants | None = None,
) -> dict[str, np.ndarray]:
    """Correlation coefficients of one block of resamples.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's random stream (see :func:`dataset_rng`).
    size : int
        Number of resamples in the block.
    human : ndarray, shape (M,)
        Human score per model (used when ``participants`` is None).
    metrics : ndarray, shape (K, M)
        Value of each of K metrics per model; ``NaN`` where missing.
    methods : tuple of str
        Correlation methods (keys of :data:`CORRELATIONS`).
    participants : Participants, optional
        Per-participant scores in the same model order; when given, the
        human score of each slot is a participant-resampled mean.

    Returns
    -------
    dict of str to ndarray
        For each method, an array of shape ``(size, K)``: the coefficient of
        each resample and metric. Every metric and method sees the same
        resampled models and participants, which makes paired comparisons
        between metrics valid.
    """
    n_models = human.shape[0]
    # size x M: which model fills each slot of each resample.
    slots = rng.integers(0, n_models, size=(size, n_models))
    if participants is None:
        human_draws = human[slots]
    else:
        human_draws = participants.resample_means(rng, slots)
    # size x K x M: metric values in the same slots.
    metric_draws = np.moveaxis(metrics[:, slots], 0, 1)
    if np.isnan(metrics).any():
        human_stack = np.broadcast_to(human_draws[:, None, :], metric_draws.shape)
        return {m: CORRELATIONS[m](human_stack, metric_draws) for m in methods}
    return _complete_block(human_draws, metric_draws, methods)


def _complete_block(
    human_draws: np.ndarray, metric_draws: np.ndarray, methods: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """The same coefficients when no value is missing, with shared work shared.

    The human side is ranked once per resample instead of once per metric,
    and Kendall's pair signs come from small-integer ranks, which moves an
    eighth of the memory that float differences would.
    """
    out = {}
    # size x 1 x M, broadcast against size x K x M below.
    human = human_draws[:, None, :]
    if "pearson" in methods:
        out["pearson"] = pearson_rows(human, metric_draws)
    if "spearman" in methods or "kendall" in methods:
        human_ranks = average_ranks(human_draws)
        metric_ranks = average_ranks(metric_draws)
    if "spearman" in methods:
        out["spearman"] = pearson_rows(human_ranks[:, None, :], metric_ranks)
    if "kendall" in methods:
        out["kendall"] = _kendall_from_ranks(human_ranks, metric_ranks)
    return {m: out[m] for m in methods}


def _kendall_from_ranks(
    human_ranks: np.ndarray, metric_ranks: np.ndarray
) -> np.ndarray:
    """Kendall's tau-b from average ranks: human (B, M), metrics (B, K, M)."""
    n = human_ranks.shape[-1]
    first, second = np.triu_indices(n, k=1)
    # Average ranks are multiples of 1/2, so twice a rank is an exact integer.
    kind = np.int16 if 2 * n < np.iinfo(np.int16).max else np.int32
    human2: np.ndarray = (2 * human_ranks).astype(kind)
    metric2: np.ndarray = (2 * metric_ranks).astype(kind)
    # B x P and B x K x P pair signs, P = M (M - 1) / 2.
    sign_h = np.sign(human2[:, first] - human2[:, second]).astype(np.int8)
    sign_m = np.sign(metric2[..., first] - metric2[..., second]).astype(np.int8)
    concordance = (sign_m * sign_h[:, None, :]).sum(axis=-1, dtype=np.int64)
    untied_h = np.abs(sign_h).sum(axis=-1, dtype=np.int64)[:, None]
    untied_m = np.abs(sign_m).sum(axis=-1, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = concordance / np.sqrt(untied_h.astype(float) * untied_m)
    tau = np.where((untied_h > 0) & (untied_m > 0), tau, np.nan)
    return np.clip(tau, -1.0, 1.0)
