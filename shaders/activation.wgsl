// ENet's activation, PReLU, on a group of 4 channels with their own slopes (every network
// kernel is prefixed by this, after layout.wgsl). A slope of 1 is the identity, 0 is ReLU.
fn prelu4(v: vec4<f32>, slope: vec4<f32>) -> vec4<f32> {
    return select(v * slope, v, v >= vec4<f32>(0.0));
}
