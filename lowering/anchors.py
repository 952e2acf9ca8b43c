"""What a compute definition tells the schedule templates (TOPI's tags, as IR).

`lower-graph-to-te` marks the stage a kernel's schedule is built around with
`anchor = <the graph op's Relay name>`, and a helper stage a template treats
on its own with `role`; `apply-default-schedule` keys its templates by those
marks and by the axis names below, never by stage names. Both sides import
this module, so the contract between them is written once.
"""

from __future__ import annotations

# role of the padded copy of a convolution's data: a template may compute it at root
# so that its micro-kernel reads without bounds checks
ROLE_PAD = "pad"
# role of a conv2d anchor whose every output channel reads only its own input channel (groups =
# channels, one filter each): a depthwise convolution, which has its own template
ROLE_DEPTHWISE = "depthwise"

# a conv2d stage's axes: its spatial axes in the layout's order, then the reduce axes
CONV2D_NCHW_AXES = ("n", "f", "y", "x")
CONV2D_NHWC_AXES = ("n", "y", "x", "f")
CONV2D_REDUCE_AXES = ("rc", "ry", "rx")

# a 2-d pooling stage's axes (max, or the sum of an average): spatial in the layout's order,
# then the window's
POOL2D_NCHW_AXES = ("n", "c", "y", "x")
POOL2D_NHWC_AXES = ("n", "y", "x", "c")
POOL2D_REDUCE_AXES = ("ry", "rx")

# a Winograd input transform's axes: coefficient (ξ(m+2) + ν), tile, channel; an output
# transform's: the NHWC output's
WINOGRAD_INPUT_AXES = ("e", "p", "c")
WINOGRAD_INPUT_ROWS_AXES = ("xi", "j", "p", "c")  # its rows Bᵀ d, a stage of its own
WINOGRAD_OUTPUT_AXES = ("n", "y", "x", "k")
WINOGRAD_OUTPUT_ROWS_AXES = ("i", "nu", "p", "k")  # its rows Aᵀ M, a stage of its own
