from setuptools import find_packages, setup

# torch is deliberately unpinned-but-bounded: install torch==2.13.0 (CPU) first, then this
# package, so that pip never replaces it with another build.
setup(
    name="humr",
    version="0.1.0",
    description="Probabilistic 3D human mesh recovery supervised with 2D detector heatmaps (WACV 2025)",
    packages=find_packages(include=["humr", "humr.*"]),
    package_data={"humr": ["configs/*.yaml"]},   # the shipped presets (configs/ links here)
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "numpy",
        "scipy",
        "nflows>=0.14",
        "smplx>=0.1.28",
        "torchmetrics>=1.0",
        "kornia>=0.7",
        "roma>=1.4",
        "geomloss>=0.2.6",
        "lightning>=2.1",
        "opencv-python-headless",
        "matplotlib",
        "omegaconf>=2.4",
        "pyyaml",
        "tqdm",
        "tensorboard",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout", "FrEIA==0.2", "yacs"],   # official-checkpoint tests
        "dev": ["pytest>=7", "pytest-timeout", "ruff"],
    },
    entry_points={"console_scripts": ["humr=humr.cli:main"]},
)
