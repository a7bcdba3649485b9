"""Measures and pictures of a generator: the library classifier's measures
(``classifier``), the FID Inception network and its measures (``inception``), the measures
as pure functions of features (``measures``), and image grids (``pictures``).

``python -m jaxgan.evaluators --samples=S.npy --dataset=fashion_mnist`` scores a file of
samples with every Inception measure.
"""
