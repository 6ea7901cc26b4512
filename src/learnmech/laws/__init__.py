"""learnmech.laws"""
