// RUN: lathe-opt %s -t llvm --target-options='-mcpu=znver4' | filecheck %s

// A vectorized exp calls the polynomial of backends/llvm/vmath.py: n = round(x log2 e) by the
// 1.5 * 2^23 addend, r = x - n ln2 in two fmas, a degree-6 Horner polynomial, and 2^n added
// to the result's exponent field as an integer (no float multiply, so no lane ever forms a
// subnormal); below the least x with a normal exp the lane is 0, above the greatest with a
// finite exp, or NaN, it is x + inf.
// CHECK-LABEL: define internal <16 x float> @lathe_vexp_v16f32(<16 x float> %x)
// CHECK:       %[[B:.*]] = call <16 x float> @llvm.fma.v16f32(<16 x float> %x, <16 x float> <float 0x3FF7154760000000
// CHECK-SAME:  <16 x float> <float 0x4168000000000000
// CHECK-NEXT:  %[[N:.*]] = fsub <16 x float> %[[B]], <float 0x4168000000000000
// CHECK-NEXT:  call <16 x float> @llvm.fma.v16f32(<16 x float> %[[N]], <16 x float> <float 0xBFE62E4300000000
// CHECK-NEXT:  call <16 x float> @llvm.fma.v16f32(<16 x float> %[[N]]
// CHECK-COUNT-6: call <16 x float> @llvm.fma.v16f32(
// CHECK-NOT:   fmul
// CHECK:       %[[BI:.*]] = bitcast <16 x float> %[[B]] to <16 x i32>
// CHECK-NEXT:  %[[SH:.*]] = shl <16 x i32> %[[BI]], <i32 23
// CHECK-NEXT:  %[[PI:.*]] = bitcast <16 x float>
// CHECK-NEXT:  %[[S:.*]] = add <16 x i32> %[[PI]], %[[SH]]
// CHECK:       fcmp olt <16 x float> %x, <float 0xC055D589E0000000
// CHECK-NEXT:  select <16 x i1> %{{.*}}, <16 x float> zeroinitializer
// CHECK-NEXT:  fcmp ugt <16 x float> %x, <float 0x40562E42E0000000
// CHECK-NEXT:  fadd <16 x float> %x, <float 0x7FF0000000000000
// CHECK:       ret <16 x float>
// CHECK-LABEL: define void @softmax_exp(
// CHECK:       call contract <16 x float> @lathe_vexp_v16f32(
func.func private @softmax_exp(%x: memref<8x128xf32>, %out: memref<8x128xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c128 = arith.constant 128 : index
  scf.for %i = %c0 to %c8 step %c1 {
    scf.for %j = %c0 to %c128 step %c1 {
      %a = memref.load %x[%i, %j] : memref<8x128xf32>
      %e = math.exp %a : f32
      memref.store %e, %out[%i, %j] : memref<8x128xf32>
    } {loop.annotation = #loop.annotation<vectorize = 16>}
  }
  func.return
}
