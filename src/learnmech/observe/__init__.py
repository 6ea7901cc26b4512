"""learnmech.observe"""
