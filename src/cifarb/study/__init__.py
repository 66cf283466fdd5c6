"""cifarb.study"""
