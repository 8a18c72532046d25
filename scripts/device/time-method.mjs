// Times every call of one method of a class, for the device scripts that time parts of a load or a generation:
// `spent` gets each call's milliseconds, up to the settling of the promise where the method returns one.
export function timeMethod(cls, name, spent) {
  const method = cls.prototype[name];
  cls.prototype[name] = function (...args) {
    const t = performance.now();
    const out = method.apply(this, args);
    if (out instanceof Promise) return out.finally(() => spent(performance.now() - t));
    spent(performance.now() - t);
    return out;
  };
}
