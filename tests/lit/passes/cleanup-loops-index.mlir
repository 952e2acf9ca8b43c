// RUN: lathe-opt %s -p cleanup-loops | filecheck %s

// The packing transpose of batch_matmul's B operand (BERT's K^T, 12x128x64 -> 12x4x64x32):
// the inlined reshape reads its source through the flat index ((b*4 + jo)*32 + j)*64 + k and
// splits it again by 64, 128 and 12. With the loop bounds known, k = (f rem 4)*16 + ki < 64,
// j = jo'*16 + ji < 32 and jo < 4 make every division cancel: the read is src[b, jo*32 + j, k],
// a lane's address affine in ji, and the signed divisions of the fused loop index that stay
// are unsigned ones of values known non-negative.
// CHECK-LABEL: func.func private @pack
// CHECK-NOT:     arith.remsi
// CHECK-NOT:     arith.floordivsi
// CHECK:         scf.for %[[F:.*]] = %{{.*}} to %{{.*}} step
// CHECK:         scf.for %[[JO:.*]] = %{{.*}} to %{{.*}} step
// CHECK:         scf.for %[[KI:.*]] = %{{.*}} to %{{.*}} step
// CHECK:         scf.for %[[JI:.*]] = %{{.*}} to %{{.*}} step
// CHECK-DAG:       %[[FR:.*]] = arith.remui %[[F]], %[[C4:.*]] : index
// CHECK-DAG:       %[[FD:.*]] = arith.divui %[[F]], %[[C4]] : index
// CHECK-DAG:       %[[JB:.*]] = arith.remui %[[FD]], %[[C4]] : index
// CHECK-DAG:       %[[B:.*]] = arith.divui %[[F]], %[[C16:.*]] : index
// CHECK-DAG:       %[[KR:.*]] = arith.muli %[[FR]], %[[C16]] : index
// CHECK-DAG:       %[[K:.*]] = arith.addi %[[KR]], %[[KI]] : index
// CHECK-DAG:       %[[JBS:.*]] = arith.muli %[[JB]], %[[C32:.*]] : index
// CHECK-DAG:       %[[JOS:.*]] = arith.muli %[[JO]], %[[C16]] : index
// CHECK-DAG:       %[[J0:.*]] = arith.addi %[[JBS]], %[[JOS]] : index
// CHECK-DAG:       %[[J:.*]] = arith.addi %[[J0]], %[[JI]] : index
// CHECK:           memref.load %src[%[[B]], %[[J]], %[[K]]] : memref<12x128x64xf32>
// CHECK-NOT:     arith.remsi
// CHECK-NOT:     arith.floordivsi
// CHECK:         func.return
func.func private @pack(%src: memref<12x128x64xf32>, %out: memref<12x4x64x32xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %c12 = arith.constant 12 : index
  %c16 = arith.constant 16 : index
  %c32 = arith.constant 32 : index
  %c64 = arith.constant 64 : index
  %c128 = arith.constant 128 : index
  %c192 = arith.constant 192 : index
  scf.for %f = %c0 to %c192 step %c1 {
    scf.for %jo = %c0 to %c2 step %c1 {
      scf.for %ki = %c0 to %c16 step %c1 {
        scf.for %ji = %c0 to %c16 step %c1 {
          %kb = arith.remui %f, %c4 : index
          %fd = arith.divui %f, %c4 : index
          %jb = arith.remui %fd, %c4 : index
          %b = arith.divui %fd, %c4 : index
          %jos = arith.muli %jo, %c16 : index
          %j = arith.addi %jos, %ji : index
          %kbs = arith.muli %kb, %c16 : index
          %k = arith.addi %kbs, %ki : index
          %b4 = arith.muli %b, %c4 : index
          %bj = arith.addi %b4, %jb : index
          %bj32 = arith.muli %bj, %c32 : index
          %row = arith.addi %bj32, %j : index
          %row64 = arith.muli %row, %c64 : index
          %flat = arith.addi %row64, %k : index
          %k2 = arith.remsi %flat, %c64 : index
          %r = arith.floordivsi %flat, %c64 : index
          %j2 = arith.remsi %r, %c128 : index
          %bq = arith.floordivsi %r, %c128 : index
          %b2 = arith.remsi %bq, %c12 : index
          %v = memref.load %src[%b2, %j2, %k2] : memref<12x128x64xf32>
          memref.store %v, %out[%b, %jb, %k, %j] : memref<12x4x64x32xf32>
        } {loop.annotation = #loop.annotation<vectorize = 16>}
      } {loop.annotation = #loop.annotation<unroll>}
    }
  } {loop.annotation = #loop.annotation<parallel>}
  func.return
}

// What the ranges do not prove stays: a dividend that may be negative (i - 8), one of
// unknown range (a function argument), and a remainder whose rest may reach the divisor
// ((i*16 + j) rem 24 with j < 16: 16 does not divide 24, no term cancels).
// CHECK-LABEL: func.func private @kept
// CHECK:         arith.remsi %{{.*}}, %{{.*}} : index
// CHECK:         arith.floordivsi %{{.*}}, %{{.*}} : index
// CHECK:         arith.remui %{{.*}}, %{{.*}} : index
// CHECK:         func.return
func.func private @kept(%n: index, %out: memref<64xindex>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %c24 = arith.constant 24 : index
  scf.for %i = %c0 to %c4 step %c1 {
    scf.for %j = %c0 to %c16 step %c1 {
      %m = arith.subi %i, %c8 : index
      %a = arith.remsi %m, %c4 : index
      %b = arith.floordivsi %n, %c4 : index
      %i16 = arith.muli %i, %c16 : index
      %ij = arith.addi %i16, %j : index
      %c = arith.remui %ij, %c24 : index
      %ab = arith.addi %a, %b : index
      %abc = arith.addi %ab, %c : index
      memref.store %abc, %out[%ij] : memref<64xindex>
    }
  }
  func.return
}
