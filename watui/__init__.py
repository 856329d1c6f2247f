"""watui: WhatsApp Cloud API template campaigns from the terminal."""

__version__ = "0.1.0"
