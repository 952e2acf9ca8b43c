// RUN: lathe-opt %s -p lower-te-to-loop,cleanup-loops | filecheck %s
// RUN: lathe-opt %s -p lower-te-to-loop,cleanup-loops -t llvm | filecheck %s --check-prefix=LLVM
// RUN: lathe-opt %s -p lower-te-to-loop,cleanup-loops --print-op-generic | lathe-opt | filecheck %s

// te.prefetch at the weight-panel loop: while panel j.o computes, panel j.o + 1 (w[j.o + 1, :, :],
// 64 x 16 floats = 64 lines, one more where it does not start on a line) is asked for a line
// per iteration of the busiest plain loop inside (k, 4 x 64 = 256 runs: line i * 64 + k), none
// once the panel ahead is past the end (the last iteration), clamped to the buffer.
// CHECK-LABEL: func.func private @panels
// CHECK:         scf.for %j_o = %{{.*}} to %[[PANELS:.*]] step %{{.*}} {
// CHECK:           %[[NEXT:.*]] = arith.addi %j_o, %{{.*}} : index
// CHECK:           %[[START:.*]] = arith.muli %[[NEXT]], %{{.*}} : index
// CHECK:           %[[MORE:.*]] = arith.cmpi slt, %[[NEXT]], %[[PANELS]] : index
// CHECK:           %[[LINES:.*]] = arith.select %[[MORE]], %{{.*}}, %{{.*}} : index
// CHECK:           scf.for %i = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:             scf.for %k = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:               %[[ROW:.*]] = arith.muli %i, %{{.*}} : index
// CHECK-NEXT:          %[[T:.*]] = arith.addi %k, %[[ROW]] : index
// CHECK-NEXT:          %[[LIVE:.*]] = arith.cmpi slt, %[[T]], %[[LINES]] : index
// CHECK-NEXT:          scf.if %[[LIVE]] {
// CHECK-NEXT:            %[[LINE:.*]] = arith.muli %[[T]], %{{.*}} : index
// CHECK-NEXT:            %[[AT:.*]] = arith.addi %[[START]], %[[LINE]] : index
// CHECK:                 %[[CLAMPED:.*]] = arith.minsi %[[AT]], %{{.*}} : index
// CHECK-NEXT:            loop.prefetch %w[%[[CLAMPED]]] {locality = 2 : i32} : memref<4x64x16xf32>
// CHECK:               }
// CHECK:               scf.for %[[JI:j_i.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:                 memref.load %w[%j_o, %k, %[[JI]]]
// LLVM:          declare void @llvm.prefetch.p0(ptr, i32, i32, i32)
// LLVM:          call void @llvm.prefetch.p0(ptr %{{.*}}, i32 0, i32 2, i32 1)
func.func private @panels(%x: tensor<4x64xf32>, %w: tensor<4x64x16xf32>) -> tensor<4x64xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "mm", axes = ["i", "j", "k"], reduce_extents = [64], combiner = "sum"} : tensor<4x64xf32> {
  ^bb0(%i: index, %j: index, %k: index):
    %c16 = arith.constant 16 : index
    %jo = arith.divui %j, %c16 : index
    %ji = arith.remui %j, %c16 : index
    %a = te.read %x[%i, %k] : tensor<4x64xf32> -> f32
    %b = te.read %w[%jo, %k, %ji] : tensor<4x64x16xf32> -> f32
    %p = arith.mulf %a, %b : f32
    te.yield %p : f32
  }
  te.split %0 {axis = "j", factor = 16, outer = "j.o", inner = "j.i"} : tensor<4x64xf32>
  te.reorder %0 {order = ["j.o", "i", "k", "j.i"]} : tensor<4x64xf32>
  te.vectorize %0 {axis = "j.i"} : tensor<4x64xf32>
  te.prefetch %0, %w {axis = "j.o", distance = 1 : i64, locality = 2 : i64} : tensor<4x64xf32>, tensor<4x64x16xf32>
  func.return %0 : tensor<4x64xf32>
}
