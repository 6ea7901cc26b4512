"""learnmech.hyper"""
