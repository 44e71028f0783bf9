// Plateau rule (docs/method.md): when validation loss has not improved for `patience`
// evaluations, act (decay the LR or step the sparsity back), then start counting again.
export class PlateauTracker {
  private best = Infinity;
  private sinceBest = 0;

  constructor(private readonly patience: number) {}

  /** Records one evaluation; true when the rule fires on it. */
  observe(validationLoss: number): boolean {
    if (this.patience <= 0) return false;
    if (validationLoss < this.best) {
      this.best = validationLoss;
      this.sinceBest = 0;
      return false;
    }
    this.sinceBest += 1;
    if (this.sinceBest < this.patience) return false;
    this.sinceBest = 0;
    return true;
  }

  get bestLoss(): number { return this.best; }
}
