"""cifarb.metrics"""
