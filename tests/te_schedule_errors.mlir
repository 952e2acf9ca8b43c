// Odd hand-written schedules: each case (the file splits at the usual separator) must end in the LatheError
// after "// ERROR:", naming the te op and the stage, never a crash or IR that fails the
// verifier. Run by tests/test_robust_passes.py.

// ERROR: te.fuse on stage 'A': no axes to fuse
func.func private @k(%a: tensor<8x6xf32>) -> tensor<8x6xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "A", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %p = te.read %a[%i, %j] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  te.fuse %0 {fuse_axes = [], fused = "f"} : tensor<8x6xf32>
  func.return %0 : tensor<8x6xf32>
}

// -----
// ERROR: te.tile on stage 'A': factors must be >= 1, got 0, 2
func.func private @k(%a: tensor<8x6xf32>) -> tensor<8x6xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "A", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %p = te.read %a[%i, %j] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  te.tile %0 {x_axis = "i", y_axis = "j", x_factor = 0, y_factor = 2} : tensor<8x6xf32>
  func.return %0 : tensor<8x6xf32>
}

// -----
// ERROR: te.split on stage 'A': axis name 'i.o' is already used
func.func private @k(%a: tensor<8x6xf32>) -> tensor<8x6xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "A", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %p = te.read %a[%i, %j] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  te.split %0 {axis = "i", factor = 2, outer = "i.o", inner = "i.o"} : tensor<8x6xf32>
  func.return %0 : tensor<8x6xf32>
}

// -----
// ERROR: te.rfactor on stage 'C': factor must be >= 1, got 0
func.func private @k(%a: tensor<8x6xf32>) -> tensor<8xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "C", axes = ["i", "k"], reduce_extents = [6], combiner = "sum"} : tensor<8xf32> {
  ^bb0(%i: index, %k: index):
    %p = te.read %a[%i, %k] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  %rf = te.rfactor %0 {axis = "k", factor = 0 : i64} : tensor<8xf32> -> tensor<8x1xf32>
  func.return %0 : tensor<8xf32>
}

// -----
// ERROR: te.rfactor: the stage operand must be a te.compute result, not a kernel argument
func.func private @k(%a: tensor<8xf32>) -> tensor<8xf32> attributes {lathe.kernel} {
  %rf = te.rfactor %a {axis = "k", factor = 2 : i64} : tensor<8xf32> -> tensor<8x2xf32>
  func.return %a : tensor<8xf32>
}

// -----
// B does not read A: A's tile inside B's loop would be read by nobody, and C, which
// reads A, would read a tile it is not in.
// ERROR: te.compute_at on stage 'A': stage 'C' reads it too, but its tile exists only inside 'B'
func.func private @k(%a: tensor<8x6xf32>) -> (tensor<8x6xf32>, tensor<8x6xf32>) attributes {lathe.kernel} {
  %0 = te.compute {stage = "A", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %p = te.read %a[%i, %j] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  %1 = te.compute {stage = "B", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %p = te.read %a[%i, %j] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  %2 = te.compute {stage = "C", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %p = te.read %0[%i, %j] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  te.compute_at %0, %1 {axis = "i"} : tensor<8x6xf32>, tensor<8x6xf32>
  func.return %1, %2 : tensor<8x6xf32>, tensor<8x6xf32>
}

// -----
// ERROR: te.compute_at on stage 'A': 'B' does not read it
func.func private @k(%a: tensor<8x6xf32>) -> tensor<8x6xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "A", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %p = te.read %a[%i, %j] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  %1 = te.compute {stage = "B", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %p = te.read %a[%i, %j] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  te.compute_at %0, %1 {axis = "i"} : tensor<8x6xf32>, tensor<8x6xf32>
  func.return %1 : tensor<8x6xf32>
}

// -----
// A value computed outside the stage's body would be used by the lowered kernel from the
// old one ("value defined out of its IsolatedFromAbove parent").
// ERROR: te.compute 'A': 'te.read' uses a value defined outside the stage's body
func.func private @k(%a: tensor<8x6xf32>) -> tensor<8x6xf32> attributes {lathe.kernel} {
  %c = arith.constant 0 : index
  %0 = te.compute {stage = "A", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %p = te.read %a[%c, %j] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  func.return %0 : tensor<8x6xf32>
}

// -----
// A prefetch asks for a kernel argument's lines: a stage's buffer is the kernel's own.
// ERROR: te.prefetch on stage 'B': the prefetched tensor must be an argument of the kernel
func.func private @k(%a: tensor<8x6xf32>) -> tensor<8x6xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "A", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %p = te.read %a[%i, %j] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  %1 = te.compute {stage = "B", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %p = te.read %0[%i, %j] : tensor<8x6xf32> -> f32
    te.yield %p : f32
  }
  te.prefetch %1, %0 {axis = "i", distance = 1 : i64, locality = 2 : i64} : tensor<8x6xf32>, tensor<8x6xf32>
  func.return %1 : tensor<8x6xf32>
}

// -----
// A column of a row-major matrix is one element a line: its hull is the whole matrix.
// ERROR: te.prefetch on stage 'A': the block of the tensor that loop 'j' reads is scattered in memory
func.func private @k(%a: tensor<64x64xf32>) -> tensor<64x64xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "A", axes = ["j", "i"]} : tensor<64x64xf32> {
  ^bb0(%j: index, %i: index):
    %p = te.read %a[%i, %j] : tensor<64x64xf32> -> f32
    te.yield %p : f32
  }
  te.prefetch %0, %a {axis = "j", distance = 1 : i64, locality = 2 : i64} : tensor<64x64xf32>, tensor<64x64xf32>
  func.return %0 : tensor<64x64xf32>
}
