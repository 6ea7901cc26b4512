"""learnmech.report"""
