"""Gymnasium environments for adversarial text generation with learned-discriminator rewards."""
