"""A learned per-pixel probability model for lossless coding (NeLLoC / Cool-chic ARM style).

Each sample is coded under a discretised logistic mixture whose parameters a
small network computes from the already decoded samples around it::

    causal window (W, NW, N, NE ... of every channel, earlier channels of this pixel)
      -> MLP (ReLU) -> K x (logit pi, mu, log s) -> integer CDF (lookup tables)
      -> range coder (constriction): coarse bin of 16 values, then the value in it

`train` (Keras) fits the network to the folder by minimising the code length;
`network` runs it in integers only, so every machine computes the very same
CDFs; `coder` codes a block of equal-shaped images wavefront by wavefront, one
constriction call per wavefront and stage. Only `train` imports TensorFlow.
"""
from __future__ import annotations
