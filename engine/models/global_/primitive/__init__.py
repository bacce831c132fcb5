"""Spectral primitive-equation global core (sigma levels, Simmons & Burridge 1981 vertical scheme)."""
