"""Song & Mittal's comparisons on Fashion-MNIST, at a scale the test suite affords.

The full measurement (3 seeds, 2,500 records per split) is
benchmarks/song_mittal_fashion_mnist.py; its table is in the README.  Here one
seed with 1,200 records per split and a 15-epoch CNN: modified entropy must
beat entropy (it did in every seed we measured, by about 3 points of balanced
accuracy), and the class-dependent vs global comparison is computed and
reported (in our measurements it does not reproduce: global thresholds were
as good or better).
"""

import sys
from pathlib import Path

import pytest
from _separation import null_auc_sd

from tfmia.datasets import DEBIAN_FASHION_MNIST

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_modified_entropy_beats_entropy_on_fashion_mnist(capsys):
    from song_mittal_fashion_mnist import comparisons, run_seed

    from tfmia.datasets import load_fashion_mnist

    run = run_seed(load_fashion_mnist(allow_download=False), split_size=1200, epochs=15, seed=3)
    assert run["train_accuracy"] > run["test_accuracy"] + 0.03  # the target overfits
    table = {c["better"] + " vs " + c["than"]: c["mean_difference"] for c in comparisons([run])}
    with capsys.disabled():
        for name, diff in table.items():
            print(f"\n  {name}: balanced accuracy {diff:+.4f}", end="")
    mentr_vs_entropy = [v for k, v in table.items() if k.startswith("modified_entropy") and "vs entropy" in k]
    assert len(mentr_vs_entropy) == 2 and sum(mentr_vs_entropy) > 0, table
    # The target leaks, but weakly at this scale (AUC 0.51 for entropy, which ignores the label, to
    # 0.56 for the modified entropy in our run: 1 to 5 null SDs of 0.012), so only the best attack
    # is held to a bar, 3 null SDs above chance, leaving 2 SDs for other CPUs' float32 training paths.
    best = max(metrics["auc"] for metrics in run["attacks"].values())
    assert best > 0.5 + 3 * null_auc_sd(1200, 1200), run["attacks"]
