"""Items and their images: datasets, the bytes sent to models, the JPEG fast path, face detection."""
