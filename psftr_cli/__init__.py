"""Command-line interface of psftr: parses arguments, calls psftr_core, renders."""
