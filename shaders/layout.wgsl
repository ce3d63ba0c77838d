// How activations lie in memory (every network kernel is prefixed by this): channels in
// groups of 4, each group a plane of pixels whose 4 channels sit side by side, so that a
// pixel's group is one vec4 (`act4`) load. The padding channels of a last, partial group
// hold nothing meaningful. Pool indices are plain [channel][pixel] planes of u32.

// Where channel c of pixel i (of a plane of n pixels) is stored, counted in `act`s.
fn at(c: u32, i: u32, n: u32) -> u32 {
    return ((c >> 2u) * n + i) * 4u + (c & 3u);
}
