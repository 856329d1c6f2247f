"""One module per screen; styles in a .tcss file beside each."""
