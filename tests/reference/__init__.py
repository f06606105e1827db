"""Plain numpy transcriptions of the codec's integer stages: the oracles the C++ core is tested against."""
