"""Phone numbers in new manifest lines as keyed hashes and sealed copies (crypto-shredding).

With ``ARCHIVER_PRIVACY__KEYS`` set, a new line keeps each phone number only as
a keyed hash (HMAC-SHA256 under the *search key*: finds and links the calls of
one number) and a sealed copy (AES-256-GCM under the number's own *subject
key*, the line's identity as associated data). Erasing a subject destroys its
key: the sealed copies can no longer be opened, while the lines, and so the
chain and its proofs, stay as written. See docs/compliance.md, "What remains
after an erasure".
"""
