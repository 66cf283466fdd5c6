"""cifarb.report"""
