// Live validation: the same validatePipeline the CLI runs, recomputed when the pipeline changes.
import { useMemo } from 'react';
import { validatePipeline } from '../../../core/validate';
import type { ValidationProblem } from '../../../core/api';
import { selectPipeline } from '../stores/graph-store';
import { useGraph } from '../app/studio-context';

export function useValidation(): ValidationProblem[] {
  const pipeline = useGraph(selectPipeline);
  return useMemo(() => validatePipeline(pipeline), [pipeline]);
}
