// RUN: lathe-opt %s -p cleanup-loops | filecheck %s

// A loop of one iteration becomes its body, unless it is bound to a GPU id: a bound loop is a
// launch dimension (a grid or a block of one), and without it the threadIdx loop would run
// outside any grid and the store in the one-thread block in every thread.
// CHECK-LABEL: func.func private @k
// CHECK-DAG:     %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG:     %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG:     %[[Z:.*]] = arith.constant 0.000000e+00 : f32
// CHECK:         scf.for %[[B:.*]] = %[[C0]] to %[[C1]] step %[[C1]] {
// CHECK-NEXT:      scf.for %[[T:.*]] = %[[C0]] to %[[C1]] step %[[C1]] {
// CHECK-NEXT:        memref.store %[[Z]], %a[%[[B]], %[[T]], %[[C0]]] : memref<1x1x1xf32>
// CHECK-NEXT:      } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
// CHECK-NEXT:    } {loop.annotation = #loop.annotation<bind = "blockIdx.x">}
// CHECK-NEXT:    func.return
func.func private @k(%a: memref<1x1x1xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %b = %c0 to %c1 step %c1 {
    scf.for %t = %c0 to %c1 step %c1 {
      scf.for %i = %c0 to %c1 step %c1 {
        %z = arith.constant 0.0 : f32
        memref.store %z, %a[%b, %t, %i] : memref<1x1x1xf32>
      }
    } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
  } {loop.annotation = #loop.annotation<bind = "blockIdx.x">}
  func.return
}
