"""On-screen text: frames sampled from stored segments, read by OCR, kept with their
keyframes in the chain. A sibling of transcription with the same job leases."""
