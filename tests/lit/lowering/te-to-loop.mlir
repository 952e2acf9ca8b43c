// RUN: lathe-opt %s --split-input-file -p lower-te-to-loop | filecheck %s

// No schedule: one loop per axis, the reduction initialised before its loop.
// CHECK-LABEL: func.func private @row_sum(%a: memref<7x13xf32>, %out: memref<7xf32>) attributes {lathe.kernel, lathe.num_inputs = 1 : i64} {
// CHECK:         scf.for %i = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:           %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:      memref.store %[[ZERO]], %out[%i] : memref<7xf32>
// CHECK:           scf.for %k = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT:        %[[V:.*]] = memref.load %a[%i, %k] : memref<7x13xf32>
// CHECK-NEXT:        %[[ACC:.*]] = memref.load %out[%i] : memref<7xf32>
// CHECK-NEXT:        %[[SUM:.*]] = arith.addf %[[ACC]], %[[V]] : f32
// CHECK-NEXT:        memref.store %[[SUM]], %out[%i] : memref<7xf32>
func.func private @row_sum(%a: tensor<7x13xf32>) -> tensor<7xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "row_sum", axes = ["i", "k"], reduce_extents = [13], combiner = "sum"} : tensor<7xf32> {
  ^bb0(%i: index, %k: index):
    %1 = te.read %a[%i, %k] : tensor<7x13xf32> -> f32
    te.yield %1 : f32
  }
  func.return %0 : tensor<7xf32>
}

// -----
// split by a factor that does not divide 7 needs a guard; parallel/vectorize
// become loop annotations.
// CHECK-LABEL: func.func private @scale
// CHECK:         scf.for %i_o = %{{.*}} to %[[C2:.*]] step
// CHECK:           scf.for %i_i = %{{.*}} to %[[C4:.*]] step
// CHECK:             %[[M:.*]] = arith.muli %i_o, %{{.*}} : index
// CHECK-NEXT:        %[[I:.*]] = arith.addi %[[M]], %i_i : index
// CHECK:             %[[G:.*]] = arith.cmpi slt, %[[I]], %{{.*}} : index
// CHECK-NEXT:        scf.if %[[G]] {
// CHECK:               memref.store %{{.*}}, %out[%[[I]]] : memref<7xf32>
// CHECK:           } {loop.annotation = #loop.annotation<vectorize = 4>}
// CHECK:         } {loop.annotation = #loop.annotation<parallel>}
func.func private @scale(%a: tensor<7xf32>) -> tensor<7xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "scale", axes = ["i"]} : tensor<7xf32> {
  ^bb0(%i: index):
    %1 = te.read %a[%i] : tensor<7xf32> -> f32
    %2 = arith.mulf %1, %1 : f32
    te.yield %2 : f32
  }
  te.split %0 {axis = "i", factor = 4, outer = "i.o", inner = "i.i"} : tensor<7xf32>
  te.parallel %0 {axis = "i.o"} : tensor<7xf32>
  te.vectorize %0 {axis = "i.i"} : tensor<7xf32>
  func.return %0 : tensor<7xf32>
}

// -----
// reorder puts j outside i; fuse makes one loop of extent 6 * 5; unroll annotates.
// CHECK-LABEL: func.func private @transpose
// CHECK:         scf.for %j = %{{.*}} to %{{.*}} step
// CHECK:           scf.for %i = %{{.*}} to %{{.*}} step
// CHECK:           } {loop.annotation = #loop.annotation<unroll>}
// CHECK-LABEL: func.func private @fused
// CHECK:         %[[C30:.*]] = arith.constant 30 : index
// CHECK:         scf.for %i_j = %{{.*}} to %[[C30]] step
// CHECK:           arith.remui %i_j
// CHECK:           arith.divui %i_j
func.func private @transpose(%a: tensor<5x6xf32>) -> tensor<6x5xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "t", axes = ["j", "i"]} : tensor<6x5xf32> {
  ^bb0(%j: index, %i: index):
    %1 = te.read %a[%i, %j] : tensor<5x6xf32> -> f32
    te.yield %1 : f32
  }
  te.reorder %0 {order = ["j", "i"]} : tensor<6x5xf32>
  te.unroll %0 {axis = "i"} : tensor<6x5xf32>
  func.return %0 : tensor<6x5xf32>
}
func.func private @fused(%a: tensor<6x5xf32>) -> tensor<6x5xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "copy", axes = ["i", "j"]} : tensor<6x5xf32> {
  ^bb0(%i: index, %j: index):
    %1 = te.read %a[%i, %j] : tensor<6x5xf32> -> f32
    te.yield %1 : f32
  }
  te.fuse %0 {fuse_axes = ["i", "j"], fused = "i.j"} : tensor<6x5xf32>
  func.return %0 : tensor<6x5xf32>
}

// -----
// compute_inline: the producer gets no buffer or loop; its body is substituted.
// CHECK-LABEL: func.func private @inline
// CHECK-NOT:     memref.alloc
// CHECK:         scf.for
// CHECK-NEXT:      %[[X:.*]] = memref.load %a[%{{.*}}] : memref<8xf32>
// CHECK-NEXT:      %[[D:.*]] = arith.addf %[[X]], %[[X]] : f32
// CHECK-NEXT:      %[[S:.*]] = arith.mulf %[[D]], %[[D]] : f32
// CHECK-NEXT:      memref.store %[[S]], %out[%{{.*}}] : memref<8xf32>
func.func private @inline(%a: tensor<8xf32>) -> tensor<8xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "double", axes = ["i"]} : tensor<8xf32> {
  ^bb0(%i: index):
    %1 = te.read %a[%i] : tensor<8xf32> -> f32
    %2 = arith.addf %1, %1 : f32
    te.yield %2 : f32
  }
  %3 = te.compute {stage = "square", axes = ["i"]} : tensor<8xf32> {
  ^bb0(%i: index):
    %4 = te.read %0[%i] : tensor<8xf32> -> f32
    %5 = arith.mulf %4, %4 : f32
    te.yield %5 : f32
  }
  te.compute_inline %0 : tensor<8xf32>
  func.return %3 : tensor<8xf32>
}

// -----
// The glue function is bufferized in destination-passing style.
// CHECK-LABEL: func.func @main(%x: memref<4xf32>) -> memref<4xf32> {
// CHECK-NEXT:    %0 = memref.alloc() {alignment = 64 : i64} : memref<4xf32>
// CHECK-NEXT:    func.call @neg(%x, %0) : (memref<4xf32>, memref<4xf32>) -> ()
// CHECK-NEXT:    func.return %0 : memref<4xf32>
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = func.call @neg(%x) : (tensor<4xf32>) -> tensor<4xf32>
  func.return %0 : tensor<4xf32>
}
func.func private @neg(%a: tensor<4xf32>) -> tensor<4xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "neg", axes = ["i"]} : tensor<4xf32> {
  ^bb0(%i: index):
    %1 = te.read %a[%i] : tensor<4xf32> -> f32
    %2 = arith.negf %1 : f32
    te.yield %2 : f32
  }
  func.return %0 : tensor<4xf32>
}

// -----
// tile = split x, split y, reorder (x.outer, y.outer, x.inner, y.inner); bind
// becomes a loop annotation for GPU backends.
// CHECK-LABEL: func.func private @tiled
// CHECK:         scf.for %i_outer =
// CHECK:           scf.for %j_outer =
// CHECK:             scf.for %i_inner =
// CHECK:               scf.for %j_inner =
// CHECK:         } {loop.annotation = #loop.annotation<bind = "blockIdx.x">}
func.func private @tiled(%a: tensor<8x6xf32>) -> tensor<8x6xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "copy", axes = ["i", "j"]} : tensor<8x6xf32> {
  ^bb0(%i: index, %j: index):
    %1 = te.read %a[%i, %j] : tensor<8x6xf32> -> f32
    te.yield %1 : f32
  }
  te.tile %0 {x_axis = "i", y_axis = "j", x_factor = 4, y_factor = 3} : tensor<8x6xf32>
  te.bind %0 {axis = "i.outer", thread_axis = "blockIdx.x"} : tensor<8x6xf32>
  func.return %0 : tensor<8x6xf32>
}
