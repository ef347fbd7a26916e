"""One readable file per architecture: stylegan2 (generator), vgg16 (perceptual features)."""
