"""learnmech.kernels"""
