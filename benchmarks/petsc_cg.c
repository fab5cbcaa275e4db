/* The PETSc reference for the poisson example's time per CG iteration: the same 2-D problem
 * (-lap u = f on the unit square, n x n cells, cell-centred, Dirichlet u = 0 through the ghost
 * cell, f from u = x(1-x) y(1-y)), the same slabs (whole rows per rank), as an assembled AIJ
 * matrix on a DMDA, solved by KSPCG with PCNONE for a fixed number of iterations (rtol = 0).
 * The residual norm used is the natural one, which CG gets for free (as ours does).
 * Built and run by scripts/bench-poisson.sh; any PETSc option (-log_view, -ksp_type ...) applies.
 *
 *   mpirun -np P petsc_cg N ITERATIONS
 */
#include <petscdmda.h>
#include <petscksp.h>
#include <time.h>

/* CPU time of this process (leaves out waiting for a core on a loaded machine), as ours reports. */
static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double bubble(PetscInt k, double h) { double x = (k + 0.5) * h; return x * (1.0 - x); }

int main(int argc, char **argv) {
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscInt n = argc > 1 ? atoi(argv[1]) : 1024, iters = argc > 2 ? atoi(argv[2]) : 100;
  PetscMPIInt size, rank;
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscCallMPI(MPI_Comm_rank(PETSC_COMM_WORLD, &rank));
  DM da;
  /* One rank along x (the contiguous axis), all along y: slabs of whole rows. */
  PetscCall(DMDACreate2d(PETSC_COMM_WORLD, DM_BOUNDARY_NONE, DM_BOUNDARY_NONE, DMDA_STENCIL_STAR, n, n, 1, size, 1, 1,
                         NULL, NULL, &da));
  PetscCall(DMSetFromOptions(da));
  PetscCall(DMSetUp(da));
  Mat A;
  Vec b, x;
  PetscCall(DMCreateMatrix(da, &A));
  PetscCall(DMCreateGlobalVector(da, &b));
  PetscCall(VecDuplicate(b, &x));

  double h = 1.0 / n, c = 1.0 / (h * h);
  PetscInt xs, ys, xm, ym;
  PetscCall(DMDAGetCorners(da, &xs, &ys, NULL, &xm, &ym, NULL));
  PetscScalar **f;
  PetscCall(DMDAVecGetArray(da, b, &f));
  for (PetscInt j = ys; j < ys + ym; j++)
    for (PetscInt i = xs; i < xs + xm; i++) {
      /* Ghost = -inside past the boundary: each missing neighbour adds 1/h^2 to the diagonal. */
      MatStencil row = {.i = i, .j = j}, col[5];
      PetscScalar v[5];
      PetscInt k = 0, missing = 0;
      PetscInt di[4] = {-1, 1, 0, 0}, dj[4] = {0, 0, -1, 1};
      for (int d = 0; d < 4; d++) {
        PetscInt ii = i + di[d], jj = j + dj[d];
        if (ii < 0 || ii >= n || jj < 0 || jj >= n) { missing++; continue; }
        col[k].i = ii, col[k].j = jj, v[k++] = -c;
      }
      col[k] = row, v[k++] = (4 + missing) * c;
      PetscCall(MatSetValuesStencil(A, 1, &row, k, col, v, INSERT_VALUES));
      f[j][i] = 2.0 * (bubble(i, h) + bubble(j, h));
    }
  PetscCall(DMDAVecRestoreArray(da, b, &f));
  PetscCall(MatAssemblyBegin(A, MAT_FINAL_ASSEMBLY));
  PetscCall(MatAssemblyEnd(A, MAT_FINAL_ASSEMBLY));

  KSP ksp;
  PC pc;
  PetscCall(KSPCreate(PETSC_COMM_WORLD, &ksp));
  PetscCall(KSPSetOperators(ksp, A, A));
  PetscCall(KSPSetType(ksp, KSPCG));
  PetscCall(KSPGetPC(ksp, &pc));
  PetscCall(PCSetType(pc, PCNONE));
  PetscCall(KSPSetNormType(ksp, KSP_NORM_NATURAL));
  PetscCall(KSPSetTolerances(ksp, 0.0, 0.0, PETSC_DEFAULT, 2));
  PetscCall(KSPSetFromOptions(ksp));
  PetscCall(KSPSetUp(ksp));
  PetscCall(KSPSolve(ksp, b, x)); /* warm-up: work vectors touched, code paged in */

  PetscCall(KSPSetTolerances(ksp, 0.0, 0.0, PETSC_DEFAULT, iters));
  PetscCall(MPI_Barrier(PETSC_COMM_WORLD));
  double t0 = MPI_Wtime(), c0 = cpu_seconds();
  PetscCall(KSPSolve(ksp, b, x));
  double t = MPI_Wtime() - t0, cpu = cpu_seconds() - c0, cpu_max;
  PetscCallMPI(MPI_Allreduce(&cpu, &cpu_max, 1, MPI_DOUBLE, MPI_MAX, PETSC_COMM_WORLD));
  PetscInt its;
  PetscReal rnorm, bnorm;
  PetscCall(KSPGetIterationNumber(ksp, &its));
  PetscCall(KSPGetResidualNorm(ksp, &rnorm));
  PetscCall(VecNorm(b, NORM_2, &bnorm));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "RESULT petsc np=%d n=%d iterations=%d residual=%.6e s_per_iter=%.6e cpu_per_iter=%.6e\n",
                        size, (int)n, (int)its, (double)(rnorm / bnorm), t / its, cpu_max / its));

  PetscCall(KSPDestroy(&ksp));
  PetscCall(VecDestroy(&x));
  PetscCall(VecDestroy(&b));
  PetscCall(MatDestroy(&A));
  PetscCall(DMDestroy(&da));
  PetscCall(PetscFinalize());
  return 0;
}
