// RUN: lathe-opt %s --split-input-file -p lower-te-to-loop,cleanup-loops | filecheck %s

// Bound inference: a producer indexed unlike its consumer, computed at the consumer's split
// loop i.o, is computed over the region the loops inside i.o read: a[2i + r] for i in
// [4·i.o, 4·i.o + 3], r in [0, 2] is a[8·i.o .. 8·i.o + 8], nine elements; the last tile
// overhangs a's 21 elements, so its copy is guarded, and the reader indexes it from 8·i.o.
// CHECK-LABEL: func.func private @window
// CHECK-DAG:     %[[C8:.*]] = arith.constant 8 : index
// CHECK-DAG:     %[[C9:.*]] = arith.constant 9 : index
// CHECK-DAG:     %[[C21:.*]] = arith.constant 21 : index
// CHECK:         scf.for %i_o =
// CHECK-NEXT:      %[[BASE:.*]] = arith.muli %i_o, %[[C8]] : index
// CHECK-NEXT:      %[[TILE:.*]] = memref.alloca() {alignment = 64 : i64} : memref<9xf32>
// CHECK-NEXT:      scf.for %ax0 = %{{.*}} to %[[C9]] step
// CHECK-NEXT:        %[[G:.*]] = arith.addi %[[BASE]], %ax0 : index
// CHECK-NEXT:        %[[IN:.*]] = arith.cmpi slt, %[[G]], %[[C21]] : index
// CHECK-NEXT:        scf.if %[[IN]] {
// CHECK-NEXT:          %[[V:.*]] = memref.load %a[%[[G]]] : memref<21xf32>
// CHECK-NEXT:          memref.store %[[V]], %[[TILE]][%ax0] : memref<9xf32>
// CHECK:           scf.for %r =
// CHECK:             %[[X:.*]] = arith.addi %{{.*}}, %r : index
// CHECK-NEXT:        %[[L:.*]] = arith.subi %[[X]], %[[BASE]] : index
// CHECK-NEXT:        memref.load %[[TILE]][%[[L]]] : memref<9xf32>
func.func private @window(%a: tensor<21xf32>) -> tensor<10xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "pool", axes = ["i", "r"], reduce_extents = [3], combiner = "sum"} : tensor<10xf32> {
  ^bb0(%i: index, %r: index):
    %c2 = arith.constant 2 : index
    %s = arith.muli %i, %c2 : index
    %x = arith.addi %s, %r : index
    %v = te.read %a[%x] : tensor<21xf32> -> f32
    te.yield %v : f32
  }
  %c = te.cache_read %a, %0 : tensor<21xf32>, tensor<10xf32> -> tensor<21xf32>
  te.split %0 {axis = "i", factor = 4, outer = "i.o", inner = "i.i"} : tensor<10xf32>
  te.compute_at %c, %0 {axis = "i.o"} : tensor<21xf32>, tensor<10xf32>
  func.return %0 : tensor<10xf32>
}


// -----
// A shared cache_read (scope "shared") computed at the reduction's k.o: a 4 x 8 tile of a
// (the block's four rows, eight of k) in memory space 3, allocated once per block, copied
// by the block's threads together between two barriers, then read by every thread.
// CHECK-LABEL: func.func private @tile
// CHECK:         scf.for %i_o =
// CHECK-NEXT:      %[[S:.*]] = memref.alloca() {alignment = 64 : i64} : memref<4x8xf32, 3 : i32>
// CHECK:           scf.for %k_o =
// CHECK-NEXT:        "gpu.barrier"() : () -> ()
// CHECK:             scf.for %f_i =
// CHECK:               memref.load %a[
// CHECK:               memref.store %{{.*}}, %[[S]][{{.*}}] : memref<4x8xf32, 3 : i32>
// CHECK:             } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
// CHECK-NEXT:        "gpu.barrier"() : () -> ()
// CHECK-NEXT:        scf.for %i_i_1 =
// CHECK:               memref.load %[[S]][{{.*}}] : memref<4x8xf32, 3 : i32>
// CHECK:         } {loop.annotation = #loop.annotation<bind = "blockIdx.x">}
func.func private @tile(%a: tensor<9x13xf32>, %b: tensor<13x6xf32>) -> tensor<9x6xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "mm", axes = ["i", "j", "k"], reduce_extents = [13], combiner = "sum"} : tensor<9x6xf32> {
  ^bb0(%i: index, %j: index, %k: index):
    %x = te.read %a[%i, %k] : tensor<9x13xf32> -> f32
    %y = te.read %b[%k, %j] : tensor<13x6xf32> -> f32
    %p = arith.mulf %x, %y : f32
    te.yield %p : f32
  }
  %c = te.cache_read %a, %0 {scope = "shared"} : tensor<9x13xf32>, tensor<9x6xf32> -> tensor<9x13xf32>
  te.split %0 {axis = "i", factor = 4, outer = "i.o", inner = "i.i"} : tensor<9x6xf32>
  te.split %0 {axis = "k", factor = 8, outer = "k.o", inner = "k.i"} : tensor<9x6xf32>
  te.reorder %0 {order = ["i.o", "k.o", "i.i", "j", "k.i"]} : tensor<9x6xf32>
  te.bind %0 {axis = "i.o", thread_axis = "blockIdx.x"} : tensor<9x6xf32>
  te.bind %0 {axis = "i.i", thread_axis = "threadIdx.x"} : tensor<9x6xf32>
  te.compute_at %c, %0 {axis = "k.o"} : tensor<9x13xf32>, tensor<9x6xf32>
  te.fuse %c {fuse_axes = ["ax0", "ax1"], fused = "f"} : tensor<9x13xf32>
  te.split %c {axis = "f", factor = 4, outer = "f.o", inner = "f.i"} : tensor<9x13xf32>
  te.reorder %c {order = ["f.i", "f.o"]} : tensor<9x13xf32>
  te.bind %c {axis = "f.i", thread_axis = "threadIdx.x"} : tensor<9x13xf32>
  func.return %0 : tensor<9x6xf32>
}


// -----
// A reduce axis bound to threadIdx.x is a cross-thread reduction: each of the 5 threads
// folds k = 5·k.o + k.i into a register, the partials go to shared memory, a tree halves
// them (5 -> 3 -> 2 -> 1) with a barrier after each level, and thread 0 writes the sum.
// CHECK-LABEL: func.func private @row_sum
// CHECK:         scf.for %i =
// CHECK-NEXT:      %[[P:.*]] = memref.alloca() {alignment = 64 : i64} : memref<5xf32, 3 : i32>
// CHECK-NEXT:      scf.for %k_i =
// CHECK-NEXT:        %[[ACC:.*]] = memref.alloca() {alignment = 64 : i64} : memref<1xf32>
// CHECK:             scf.for %k_o =
// CHECK:             memref.store %{{.*}}, %[[P]][%k_i] : memref<5xf32, 3 : i32>
// CHECK-NEXT:      } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
// CHECK-NEXT:      "gpu.barrier"() : () -> ()
// CHECK-COUNT-3:   "gpu.barrier"() : () -> ()
// CHECK-NEXT:      scf.for %[[T:.*]] =
// CHECK-NEXT:        %[[FIRST:.*]] = arith.cmpi eq, %[[T]], %{{.*}} : index
// CHECK-NEXT:        scf.if %[[FIRST]] {
// CHECK-NEXT:          %[[R:.*]] = memref.load %[[P]][%{{.*}}] : memref<5xf32, 3 : i32>
// CHECK-NEXT:          memref.store %[[R]], %out[%i] : memref<3xf32>
// CHECK:         } {loop.annotation = #loop.annotation<bind = "blockIdx.x">}
func.func private @row_sum(%a: tensor<3x13xf32>) -> tensor<3xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "row_sum", axes = ["i", "k"], reduce_extents = [13], combiner = "sum"} : tensor<3xf32> {
  ^bb0(%i: index, %k: index):
    %1 = te.read %a[%i, %k] : tensor<3x13xf32> -> f32
    te.yield %1 : f32
  }
  te.split %0 {axis = "k", factor = 5, outer = "k.o", inner = "k.i"} : tensor<3xf32>
  te.bind %0 {axis = "i", thread_axis = "blockIdx.x"} : tensor<3xf32>
  te.bind %0 {axis = "k.i", thread_axis = "threadIdx.x"} : tensor<3xf32>
  func.return %0 : tensor<3xf32>
}

// -----
// Through an inlined stage: neg reads the inlined transpose at [j, i], which reads double
// at [i, j]; at j.o, double is needed over all 5 rows and columns [2·j.o, 2·j.o + 1].
// CHECK-LABEL: func.func private @through_inlined
// CHECK:         scf.for %j_o =
// CHECK-NEXT:      %[[B:.*]] = arith.muli %j_o, %{{.*}} : index
// CHECK-NEXT:      %[[T:.*]] = memref.alloca() {alignment = 64 : i64} : memref<5x2xf32>
// CHECK:             %[[G:.*]] = arith.addi %[[B]], %j : index
// CHECK-NEXT:        memref.load %a[%i, %[[G]]] : memref<5x6xf32>
// CHECK:             memref.store %{{.*}}, %[[T]][%i, %j] : memref<5x2xf32>
// CHECK:           memref.load %[[T]][{{.*}}] : memref<5x2xf32>
func.func private @through_inlined(%a: tensor<5x6xf32>) -> tensor<6x5xf32> attributes {lathe.kernel} {
  %p = te.compute {stage = "double", axes = ["i", "j"]} : tensor<5x6xf32> {
  ^bb0(%i: index, %j: index):
    %x = te.read %a[%i, %j] : tensor<5x6xf32> -> f32
    %y = arith.addf %x, %x : f32
    te.yield %y : f32
  }
  %r = te.compute {stage = "transpose", axes = ["j", "i"]} : tensor<6x5xf32> {
  ^bb0(%j: index, %i: index):
    %x = te.read %p[%i, %j] : tensor<5x6xf32> -> f32
    te.yield %x : f32
  }
  %q = te.compute {stage = "neg", axes = ["j", "i"]} : tensor<6x5xf32> {
  ^bb0(%j: index, %i: index):
    %x = te.read %r[%j, %i] : tensor<6x5xf32> -> f32
    %y = arith.negf %x : f32
    te.yield %y : f32
  }
  te.compute_inline %r : tensor<6x5xf32>
  te.split %q {axis = "j", factor = 2, outer = "j.o", inner = "j.i"} : tensor<6x5xf32>
  te.compute_at %p, %q {axis = "j.o"} : tensor<5x6xf32>, tensor<6x5xf32>
  func.return %q : tensor<6x5xf32>
}
