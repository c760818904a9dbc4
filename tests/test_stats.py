import math

import pytest
import torch

from ebmlab.stats import mean_and_se


def test_mean_and_se_by_hand():
    mean, se = mean_and_se(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert mean == 3.0
    # sample variance (4 + 1 + 0 + 9) / 3 = 14/3; se = sqrt(14/3 / 4)
    assert se == pytest.approx(math.sqrt(14 / 12), rel=1e-12)


def test_single_value_and_empty():
    assert mean_and_se(torch.tensor([2.5])) == (2.5, 0.0)
    with pytest.raises(ValueError, match="values"):
        mean_and_se(torch.tensor([]))
