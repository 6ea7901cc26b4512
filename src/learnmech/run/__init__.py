"""learnmech.run"""
