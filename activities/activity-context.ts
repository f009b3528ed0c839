import { Context } from '@temporalio/activity';

/** The running activity's context, or undefined when called outside one (a unit test calling the function directly). */
export function currentActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}
