"""Whether an attack separates members from non-members, judged against the AUC's spread under the null.

When scores do not depend on membership, the AUC (the Mann-Whitney statistic
U / (n1 n2)) has mean 1/2 and standard deviation sqrt((n1 + n2 + 1) / (12 n1 n2))
(no ties; ties only shrink it).  An attack "separates" when its AUC exceeds
1/2 by more than ``SIGMAS`` such deviations, and "does not" when it stays
within that band: a null result outside it has probability below 1e-4.
"""

import math

SIGMAS = 4.0


def null_auc_sd(n_members: int, n_non_members: int) -> float:
    """Standard deviation of the AUC of membership-independent scores."""
    return math.sqrt((n_members + n_non_members + 1) / (12.0 * n_members * n_non_members))


def separation_margin(result, sigmas: float = SIGMAS) -> float:
    """``sigmas`` null standard deviations for the result's numbers of members and non-members."""
    return sigmas * null_auc_sd(result.n_members, result.n_non_members)


def assert_separates(result, sigmas: float = SIGMAS):
    """The attack tells members from non-members: AUC > 1/2 + ``sigmas`` null standard deviations."""
    bar = 0.5 + separation_margin(result, sigmas)
    assert result.auc > bar, f"{result.name}: AUC {result.auc:.3f} <= {bar:.3f}"


def assert_does_not_separate(result):
    """The scores carry no membership: |AUC - 1/2| < SIGMAS null standard deviations."""
    margin = separation_margin(result)
    assert abs(result.auc - 0.5) < margin, f"{result.name}: AUC {result.auc:.3f} outside 0.5 +- {margin:.3f}"
