"""File I/O at the edges of the library: images, latents, our checkpoint format, videos."""
