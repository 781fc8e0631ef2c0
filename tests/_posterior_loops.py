"""Plain-loop references over a synthetic example's stored posterior, shared by the tests of
the benchmark scripts."""
from humr.geometry import axis_angle_to_matrix


def determined_by_loop(body, batch, b):
    """(24,) list of bools: the joints whose mean distance to their mean over example ``b``'s
    distinct posterior samples (posed with its true shape, centred on the hips' midpoint) is
    below 1 mm, computed joint by joint."""
    n = max(1, int(batch["posterior_count"][b]))
    rot = axis_angle_to_matrix(batch["posterior"][b, :n].reshape(n, -1, 3)[:, :24])
    post = body(rot, batch["betas"][b:b + 1].expand(n, -1))["joints"]
    post = post - post[:, [1, 2]].mean(1, keepdim=True)
    return [float((post[:, j] - post[:, j].mean(0)).norm(dim=-1).mean()) < 1e-3
            for j in range(24)]
