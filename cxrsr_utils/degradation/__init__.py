"""How low-resolution inputs are made from HR (Real-ESRGAN's two-stage degradation or bicubic x4),
its settings, and notebook 02's preview of it.
"""
