"""learnmech.solvable"""
