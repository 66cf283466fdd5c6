"""cifarb.data"""
