// RUN: lathe-opt %s -p cleanup-loops | filecheck %s

// Kernels the same but for their names (a model's repeated layers) are cleaned once and the
// copies cloned from the first, each keeping its name and its place; a kernel that differs
// (here in one constant) is cleaned on its own.
// CHECK-LABEL: func.func private @a
// CHECK-NEXT:    %[[C:.*]] = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:    memref.store %[[C]], %x[] : memref<f32>
// CHECK-NEXT:    func.return
// CHECK-LABEL: func.func private @c
// CHECK-NEXT:    %[[C:.*]] = arith.constant 3.000000e+00 : f32
// CHECK-NEXT:    memref.store %[[C]], %x[] : memref<f32>
// CHECK-LABEL: func.func private @b
// CHECK-NEXT:    %[[C:.*]] = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:    memref.store %[[C]], %x[] : memref<f32>
// CHECK-NEXT:    func.return
func.func private @a(%x: memref<f32>) attributes {lathe.kernel} {
  %one = arith.constant 1.0 : f32
  %two = arith.addf %one, %one : f32
  %dead = arith.mulf %two, %two : f32
  memref.store %two, %x[] : memref<f32>
  func.return
}
func.func private @c(%x: memref<f32>) attributes {lathe.kernel} {
  %one = arith.constant 1.5 : f32
  %two = arith.addf %one, %one : f32
  %dead = arith.mulf %two, %two : f32
  memref.store %two, %x[] : memref<f32>
  func.return
}
func.func private @b(%x: memref<f32>) attributes {lathe.kernel} {
  %one = arith.constant 1.0 : f32
  %two = arith.addf %one, %one : f32
  %dead = arith.mulf %two, %two : f32
  memref.store %two, %x[] : memref<f32>
  func.return
}
