import { generateClients } from './generate.ts';

export default async function setup(): Promise<void> {
  await generateClients();
}
